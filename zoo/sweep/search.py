"""Optuna searches over a sweep file's ``search:`` block; every trial a normal zoo trial and row."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from zoo.data import get_dataset
from zoo.errors import ZooError
from zoo.io import to_jsonable
from zoo.sweep import engine
from zoo.sweep.run import report, study_name, trial_devices, writable_folder
from zoo.sweep.spec import SweepSpec, Trial, check_trials
from zoo.task import monitor_for

SPACE_KINDS = ("float", "int", "categorical")
FAILURES_IN_A_ROW = 5  # a search whose trials keep failing stops: something common to them is wrong


def run_search(
    spec: SweepSpec,
    output: str | Path,
    storage: str | None = None,
    say: Callable[[str], None] = print,
    *,
    study: str | None = None,
    devices: str | None = None,
    heartbeat: int = engine.HEARTBEAT,
    threads: int | None = None,
) -> list[dict]:
    """An Optuna study (TPE) toward the task's own metric: best val/acc up, or val/loss (MSE) down.

    The study lives in the sweep's storage (``zoo.sweep.engine``), as a grid's does. Each
    worker runs until the study holds ``trials`` finished trials, so a restart continues it and
    workers on several machines share it; a trial whose worker vanished runs again.
    """
    import optuna

    search = spec.search
    if search is None:
        raise ZooError("this sweep file has no search: block; run it without --search")
    output = writable_folder(Path(output))
    space = {key: _parse_space(key, value) for key, value in search.space.items()}
    corner = {key: _first_value(value) for key, value in search.space.items()}  # the space's keys and kinds
    check_trials([Trial(search.config, corner, (search.seed,), str(output), spec.common)])
    monitor = monitor_for(_task(search.config, spec.common))
    engine.check_output(output, storage or search.storage)
    url = engine.storage_url(output, storage or search.storage)
    direction = "maximize" if monitor.mode == "max" else "minimize"
    what = engine.definition(spec, "search")
    opened = engine.open_study(
        engine.open_storage(url, heartbeat), search.study or study_name(output, study), what, direction
    )
    opened.set_user_attr("figures", to_jsonable(spec.figures))
    engine.record_output(output, storage or search.storage)
    engine.name_objective(opened, f"val {monitor.metric}")
    # A sampler seeded alike on every start would replay its first draws in a resumed study and
    # in every worker; by default it is unseeded, and a sampler_seed is offset by the trials so far.
    seed = None if search.sampler_seed is None else search.sampler_seed + len(opened.trials)
    opened.sampler = optuna.samplers.TPESampler(seed=seed)
    key = f"val_{monitor.metric}"
    states = optuna.trial.TrialState

    def take():
        optuna_trial = engine.take_waiting(opened)  # a trial whose worker vanished, first
        if optuna_trial is None:
            counts = [
                opened._storage.get_n_trials(opened._study_id, state) for state in (states.COMPLETE, states.RUNNING)
            ]
            if sum(counts) >= search.trials:
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna advises optimize() for heartbeats; the worker sends them
                optuna_trial = opened.ask()
            opened._storage.record_heartbeat(optuna_trial._trial_id)
        overrides = {name: suggest(optuna_trial) for name, suggest in space.items()}
        if engine.KEY not in optuna_trial.user_attrs:
            optuna_trial.set_user_attr(engine.KEY, f"search-{optuna_trial.number}")
        trial = Trial(search.config, overrides, (search.seed,), str(output), spec.common)
        label = f"search trial {optuna_trial.number} {trial.label}"
        say(f"{label} ...")
        return optuna_trial, trial, label

    finished = opened._storage.get_n_trials(opened._study_id, states.COMPLETE)
    say(f"study {opened.study_name}: {finished} of {search.trials} trials finished; objective: {monitor.of('val')}")
    devices = devices or trial_devices(0, 0)
    worker = engine.Worker(opened, analyses=spec.analyses, threads=threads or 0, devices=devices, say=say)
    worker.run(take, lambda rows: float(rows[0][key]), give_up_after=FAILURES_IN_A_ROW)
    rows = report(opened, output, spec.figures, say=say)
    if any(trial.state == states.COMPLETE for trial in opened.trials):
        say(f"best: {opened.best_params} → {monitor.of('val')} {opened.best_value:.4f}")
    return rows


def _task(config: str, common: dict[str, Any]) -> str:
    """The task of a config's dataset (``data.dataset``, as the config or the sweep's common sets it)."""
    dataset = common.get("data.dataset") or (yaml.safe_load(Path(config).read_text()) or {}).get("data", {}).get(
        "dataset", "mnist"
    )
    return get_dataset(dataset).task


def _first_value(value: dict) -> Any:
    """A value of the space, to check its key with the CLI's parser before the search starts."""
    kind = next(kind for kind in SPACE_KINDS if kind in value)
    return value[kind][0] if kind == "categorical" else (float if kind == "float" else int)(value[kind][0])


def _parse_space(key: str, value: dict) -> Callable:
    """``{float: [low, high], log: true}``, ``{int: [low, high]}`` or ``{categorical: [choices]}``."""
    kinds = [kind for kind in SPACE_KINDS if kind in value] if isinstance(value, dict) else []
    if len(kinds) != 1:
        raise ZooError(f"search space for {key}: give exactly one of {', '.join(SPACE_KINDS)}, got {value}")
    kind = kinds[0]
    accepted = (kind,) if kind == "categorical" else (kind, "log")
    unknown = [option for option in value if option not in accepted]  # a dropped option would search another space
    if unknown:
        raise ZooError(f"search space for {key}: {kind} takes {' and '.join(accepted)}, not {', '.join(unknown)}")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ZooError(f"search space for {key}: log must be true or false, got {log!r}")
    bounds = value[kind]
    if not isinstance(bounds, list) or not bounds or (kind != "categorical" and len(bounds) != 2):
        wanted = "a list of choices" if kind == "categorical" else "a list [low, high]"
        raise ZooError(f"search space for {key}: {kind} takes {wanted}, got {bounds!r}")
    if kind == "categorical":
        choices = [json.dumps(choice) for choice in value[kind]]  # Optuna's choices must be scalars: encode lists
        return lambda trial: json.loads(trial.suggest_categorical(key, choices))
    low, high = value[kind]
    if kind == "float":
        return lambda trial: trial.suggest_float(key, float(low), float(high), log=log)
    return lambda trial: trial.suggest_int(key, int(low), int(high), log=log)
