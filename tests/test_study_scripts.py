"""The study scripts on real checkpoints: scripts/population_units.py, scripts/merge_study.py, analyze.py's help.

The populations are trained here (a few MNIST batches; multimult, the regression task) and the
scripts run in this process, as ``python scripts/<script> args``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS
from test_callbacks import run_script

from zoo import ZooDataModule, load_model
from zoo.analysis import activation_analysis
from zoo.cli import main

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit_population(folder: Path, *args: str) -> Path:
    """A population of 2 trained for one short epoch in ``folder``; its run folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        cli = main(
            ["fit", *args, "--population", "2", "--trainer.max_epochs", "1", "--trainer.callbacks", "null", *QUIET]
        )
    return folder / cli.trainer.log_dir  # the log dir is relative to where the run ran


@pytest.fixture(scope="module")
def mnist_population(tmp_path_factory, data_dir) -> str:
    """Two FCNets of 12 units on real MNIST, five batches each."""
    folder = fit_population(
        tmp_path_factory.mktemp("mnist"),
        *("--config", str(CONFIGS / "fc.yaml"), "--model.init_args.hidden", "[12]"),
        *("--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "2"),
    )
    return str(folder / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory) -> Path:
    """Two multimult networks (regression: no classes); the run folder."""
    config = ("--config", str(CONFIGS / "multimult.yaml"), "--data.num_samples", "600")
    return fit_population(tmp_path_factory.mktemp("multimult"), *config)


def units(script_args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    return run_script("population_units.py", *script_args, monkeypatch=monkeypatch, capsys=capsys)


def test_population_units_on_a_regression_population_counts_dead_units(regression_run, monkeypatch, capsys):
    """A regression population has no class profiles: it ended in ``TypeError: 'NoneType' object is not
    subscriptable``; its dead units are what is meaningful, and the class preferences are said to be absent."""
    checkpoint = str(regression_run / "checkpoints" / "last.ckpt")
    code, out, err = units([checkpoint, "--verbose"], monkeypatch, capsys)
    assert code == 0, err
    assert "2 members, fc1 (32 units), judged on" in out
    assert "no class preferences: multimult is a regression task, without classes" in out
    assert "  member   1: " in out and "class" not in out.split("no class preferences")[0]
    code, out, err = units([checkpoint, "--classes", "0", "1", "2"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("population_units: error: --classes: multimult is a regression task (outputs x0*x1, x2*x3)")
    assert err.endswith("; it has no classes\n") and len(err.splitlines()) == 1


def test_population_units_refuses_a_top_below_one(mnist_population, monkeypatch, capsys):
    """``--top 0`` ended in ``IndexError: list index out of range``."""
    for top in ("0", "-2"):
        code, out, err = units([mnist_population, "--top", top], monkeypatch, capsys)
        assert code == 2 and "Traceback" not in err, err
        assert err.splitlines()[-1] == f"population_units.py: error: argument --top: must be at least 1, got {top}"
    code, out, err = units([mnist_population, "--split", "val", "--top", "11"], monkeypatch, capsys)
    assert code == 2 and err == "population_units: error: --top 11: mnist has 10 classes; give 1 to 10\n", err


@pytest.mark.parametrize(
    "classes, message",
    [
        (["0", "3", "12"], "--classes 12: no such class; mnist's classes are 0 to 9"),
        (["0", "3", "-1"], "--classes -1: no such class; mnist's classes are 0 to 9"),
        (["0", "3"], "--classes 0 3: 2 classes, and --top is 3; give 3, or --top 2"),
        (["0", "3", "3"], "--classes 0 3 3: a class is named twice; give 3 different ones"),
    ],
)
def test_population_units_refuses_classes_the_data_has_not(mnist_population, classes, message, monkeypatch, capsys):
    """``--classes 0 3 12`` on MNIST was accepted and printed ``top 3 classes are 0123``."""
    code, out, err = units([mnist_population, "--split", "val", "--classes", *classes], monkeypatch, capsys)
    assert code == 2 and out == "", (out, err)
    assert err == f"population_units: error: {message}\n"


def test_population_units_says_what_its_numbers_are(mnist_population, monkeypatch, capsys):
    """``most preferred class: 0 4, 6 3`` did not say which number was the class; the counts are the analysis's."""
    code, out, err = units([mnist_population, "--split", "val", "--classes", "0", "2", "6"], monkeypatch, capsys)
    assert code == 0, err
    data = ZooDataModule.load_from_checkpoint(mnist_population)
    inputs, targets = data.split("val")
    firsts, sets, dead = Counter(), Counter(), Counter()
    with torch.no_grad():
        for member in load_model(mnist_population).members():
            stats = activation_analysis(member, inputs, targets, maximize=0, layers=["fc1"]).layers["fc1"]
            dead[len(stats.dead)] += 1
            for unit in set(range(stats.units)) - set(stats.dead):
                order = stats.class_profile[unit].argsort(descending=True)[:3].tolist()
                firsts[order[0]] += 1
                sets[tuple(sorted(order))] += 1
    live = sum(firsts.values())
    lines = out.splitlines()
    assert lines[0] == f"2 members, fc1 (12 units), judged on {len(inputs):,} val samples"
    assert lines[1] == "members by dead units: " + ", ".join(f"{n} with {k} dead" for k, n in sorted(dead.items()))
    assert lines[2] == f"{live} live units; most preferred class (largest class-mean activation):"
    assert lines[3] == "  " + ", ".join(f"class {c}: {n} units" for c, n in firsts.most_common())
    assert lines[4] == "most common sets of top 3 classes:"
    assert lines[5] == "  " + ", ".join(f"{{{', '.join(map(str, s))}}}: {n} units" for s, n in sets.most_common(8))
    assert lines[6] == f"live units whose top 3 classes are {{0, 2, 6}}: {sets[(0, 2, 6)]} of {live}"


def test_merge_study_names_a_missing_checkpoint_of_any_option(regression_run, run_dir, monkeypatch, capsys):
    """A missing ``--sources`` file ended in a ``FileNotFoundError`` traceback (exit 1), as did ``--merged`` and
    ``--sources-continued``; a missing ``--runs`` folder was named only after the sources had been evaluated."""
    good, folder = str(regression_run / "checkpoints" / "last.ckpt"), str(regression_run)
    cases = {
        "--sources: checkpoint not found: missing.ckpt": ["--sources", good, "missing.ckpt", "--merged", good],
        "--merged: checkpoint not found: missing.ckpt": ["--sources", good, good, "--merged", "missing.ckpt"],
        "--runs: checkpoint not found: missing/checkpoints/last.ckpt": ["--sources", good, good, "--merged", good],
    }
    for message, args in cases.items():
        runs = ["missing"] if message.startswith("--runs") else [folder]
        code, out, err = run_script("merge_study.py", *args, "--runs", *runs, monkeypatch=monkeypatch, capsys=capsys)
        assert (code, out, err) == (2, "", f"merge_study: error: {message}\n")
    args = ["--sources", good, good, "--merged", good, "--runs", folder, "--sources-continued", folder, "missing"]
    code, out, err = run_script("merge_study.py", *args, monkeypatch=monkeypatch, capsys=capsys)
    assert (code, out) == (
        2,
        "",
    ) and err == "merge_study: error: --sources-continued: checkpoint not found: missing/checkpoints/last.ckpt\n"
    code, out, err = run_script("merge_study.py", *args[:-1], folder, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert "merged point" in out and "sources trained as long, apart" in out and "lower in" in out


def test_analyze_help_says_what_every_option_is(monkeypatch, capsys):
    """``--split``, ``--max-samples`` and the analyses' options (``--threshold``) had no help text."""
    code, out, err = run_script("analyze.py", "activations", "--help", monkeypatch=monkeypatch, capsys=capsys)
    help_text = " ".join(out.split())
    assert code == 0
    assert (
        "--split {train,val,test} the samples the analysis runs on, and dead units are judged on (default train)"
        in help_text
    )
    assert "--max-samples N analyse the first N samples of the split, at least 1 (default 10000)" in help_text
    assert "--maximize MAXIMIZE units per layer shown by activation maximization" in help_text
    assert "0: none (default 8)" in help_text
    code, out, err = run_script("analyze.py", "task-separation", "--help", monkeypatch=monkeypatch, capsys=capsys)
    help_text = " ".join(out.split())
    assert (
        "--threshold THRESHOLD attribution share one output must hold for a neuron to be mono-functional (default 0.9)"
        in help_text
    )
