"""Benchmarks that print measured figures (speed targets live here, never in tests).

One module per benchmark, each a function of keyword-only options that measures, prints
its table and returns its numbers: :mod:`~zoo.bench.pipeline`, :mod:`~zoo.bench.sparse`,
:mod:`~zoo.bench.sparse_epoch`, :mod:`~zoo.bench.task_separation`,
:mod:`~zoo.bench.activations`, :mod:`~zoo.bench.population`; :mod:`~zoo.bench.report`
runs the training, analysis and kernel ones for ``docs/benchmarks.md`` and ``.json``.
The loops compared live in :mod:`~zoo.bench.loops`, clocks and alternation in
:mod:`~zoo.bench.timing`. ``scripts/bench.py`` is the command line.
"""
