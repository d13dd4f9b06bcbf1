"""Sweeps and studies: many zoo trials from one YAML file, their rows, summary and figures.

- ``spec``: the sweep file's typed schema and its expansion into trials;
- ``trial``: one trial in one process (fit, validate, test, analyses) and its rows;
- ``engine``: the Optuna study that holds a sweep's queue and record, and its workers;
- ``run``: a grid sweep's workers and report; ``results.csv``;
- ``summary``: ``summary.md`` and the figures, from the rows alone;
- ``search``: Optuna searches over the same kind of trials.
"""

from zoo.sweep.run import comparable, read_results, read_rows, run_sweep, trial_devices, write_results
from zoo.sweep.spec import SweepSpec, Trial, expand, read_sweep
from zoo.sweep.summary import write_summary

__all__ = [
    "SweepSpec",
    "Trial",
    "comparable",
    "expand",
    "read_results",
    "read_rows",
    "read_sweep",
    "run_sweep",
    "trial_devices",
    "write_results",
    "write_summary",
]
