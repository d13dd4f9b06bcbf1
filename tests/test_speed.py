"""What keeps small networks at the speed of their arithmetic: no per-step sync, a light import, batched analyses."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from zoo.models.base import FiniteWatch


@pytest.mark.parametrize("eager", [True, False])
def test_the_finite_watch_names_each_members_first_non_finite_step_and_loss(eager):
    """Read every step (CPU) or only at the end (flags kept on the device): the same failure."""
    watch = FiniteWatch(eager=eager)
    losses = [[1.0, 2.0, 3.0], [1.0, math.inf, 3.0], [math.nan, math.nan, 3.0]]
    for step, values in enumerate(losses):
        watch.observe(torch.tensor(values), step)
        if eager and watch.failed():
            break
    members, steps, values = watch.failed()
    if eager:  # a CPU run stops at the first failure
        assert (members, steps, values) == ([1], [1], [math.inf])
    else:
        assert members == [0, 1] and steps == [2, 1]
        assert math.isnan(values[0]) and values[1] == math.inf


def test_a_finite_run_has_no_failure():
    watch = FiniteWatch(eager=False)
    for step in range(3):
        watch.observe(torch.tensor(0.5), step)
    assert watch.failed() is None


def _imported_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after running ``statement`` (this checkout's zoo)."""
    probe = f"import json, sys; {statement}; print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_import_zoo_loads_no_plotting_science_or_search_library():
    """``import zoo`` costs nothing heavy: Lightning, and through it matplotlib and SciPy, come on first use."""
    heavy = ("matplotlib", "scipy", "sklearn", "optuna", "pytorch_lightning", "zoo.sweep", "zoo.figures")
    assert _imported_after("import zoo", heavy) == []
    assert _imported_after("import zoo; zoo.ZooError", heavy) == []
    assert "pytorch_lightning" in _imported_after("from zoo import ZooModule", heavy)  # the names still work


def test_the_command_line_loads_no_search_machinery():
    """``python -m zoo fit`` needs no Optuna, scikit-learn or sweep code (``scripts/sweep.py`` does)."""
    assert _imported_after("import zoo.cli", ("sklearn", "optuna", "zoo.sweep")) == []
