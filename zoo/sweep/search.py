"""Optuna searches over a sweep file's ``search:`` block; every trial a normal zoo trial and row."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from zoo.data import get_dataset
from zoo.errors import ZooError
from zoo.sweep.run import attempt, read_rows, write_results
from zoo.sweep.spec import SweepSpec, Trial
from zoo.sweep.summary import write_summary
from zoo.task import monitor_for

SPACE_KINDS = ("float", "int", "categorical")


def run_search(spec: SweepSpec, output: str | Path, storage: str | None = None, say: Callable[[str], None] = print):
    """An Optuna study (TPE) toward the task's own metric: best val/acc up, or val/loss (MSE) down.

    The study lives in ``storage``: by default SQLite in the output folder; with a database URL
    (``postgresql://user:password@host/db``) workers on several machines share one study. Each
    worker runs until the study holds ``trials`` finished trials, so a restart continues it.
    """
    import optuna

    search = spec.search
    if search is None:
        raise ZooError("this sweep file has no search: block; run it without --search")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    space = {key: _parse_space(key, value) for key, value in search.space.items()}
    monitor = monitor_for(_task(search.config, spec.common))
    study = optuna.create_study(
        study_name=search.study or output.name,
        storage=storage or search.storage or f"sqlite:///{output.resolve() / 'study.db'}",
        direction="maximize" if monitor.mode == "max" else "minimize",
        load_if_exists=True,
    )
    # A sampler seeded alike on every start would replay its first draws in a resumed study and
    # in every worker; by default it is unseeded, and a sampler_seed is offset by the trials so far.
    seed = None if search.sampler_seed is None else search.sampler_seed + len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    key = f"val_{monitor.metric}"

    def objective(optuna_trial) -> float:
        overrides = {name: suggest(optuna_trial) for name, suggest in space.items()}
        trial = Trial(search.config, overrides, (search.seed,), str(output), spec.common)
        status, message = attempt(trial, spec.analyses, threads=0, devices="1")
        say(f"search trial {optuna_trial.number} {trial.label}: {message}")
        if status != "done":
            raise optuna.TrialPruned(message)
        rows = json.loads((output / "trials" / trial.id / "rows.json").read_text())
        return float(rows[0][key])

    finished = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    say(f"study {study.study_name}: {finished} of {search.trials} trials finished; objective: {monitor.of('val')}")
    if finished < search.trials:
        done = optuna.study.MaxTrialsCallback(search.trials, states=(optuna.trial.TrialState.COMPLETE,))
        study.optimize(objective, callbacks=[done])
    rows = read_rows(output)
    write_results(output, rows)
    write_summary(output, rows, spec.figures)
    say(f"best: {study.best_params} → {monitor.of('val')} {study.best_value:.4f}")
    return rows


def _task(config: str, common: dict[str, Any]) -> str:
    """The task of a config's dataset (``data.dataset``, as the config or the sweep's common sets it)."""
    dataset = common.get("data.dataset") or (yaml.safe_load(Path(config).read_text()) or {}).get("data", {}).get(
        "dataset", "mnist"
    )
    return get_dataset(dataset).task


def _parse_space(key: str, value: dict) -> Callable:
    """``{float: [low, high], log: true}``, ``{int: [low, high]}`` or ``{categorical: [choices]}``."""
    kinds = [kind for kind in SPACE_KINDS if kind in value]
    if len(kinds) != 1:
        raise ZooError(f"search space for {key}: give exactly one of {', '.join(SPACE_KINDS)}, got {value}")
    kind, log = kinds[0], bool(value.get("log", False))
    if kind == "categorical":
        choices = [json.dumps(choice) for choice in value[kind]]  # Optuna's choices must be scalars: encode lists
        return lambda trial: json.loads(trial.suggest_categorical(key, choices))
    low, high = value[kind]
    if kind == "float":
        return lambda trial: trial.suggest_float(key, float(low), float(high), log=log)
    return lambda trial: trial.suggest_int(key, int(low), int(high), log=log)
