"""What a sweep file may say, as typed dataclasses checked before anything runs.

A sweep is configs × a grid of overrides × seeds. Every combination is a trial: one
``zoo fit`` + validate + test of the best checkpoint in one process, then the analyses
named under ``analyses:`` on that model. With ``batch_seeds: true`` the seeds of a
combination train together as one ``Population`` (one trial, one row per member).
See sweeps/*.yaml for examples and docs/studies.md for what the shipped ones found.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.analyses import Analysis, build_options, declared_number, get_analysis, list_analyses
from zoo.errors import ZooError

TIMER = "{class_path: pytorch_lightning.callbacks.Timer, init_args: {interval: epoch}}"  # text: its Enum won't save
RUN_FOLDER = ("trainer.logger", "trainer.default_root_dir")  # the sweep names each trial's run folder


@dataclass(frozen=True)
class Sampling:
    """Which samples a sweep's analysis looks at (the declaration's options say how)."""

    split: typing.Literal["train", "val", "test"] = "test"
    max_samples: int = 10_000


class Analyses:
    """The analyses run on each trial's final model, by registered name (``zoo.analyses``); one left out is not run.

    Each takes ``split`` and ``max_samples`` and its declaration's own options, e.g.
    ``task_separation: {split: test, threshold: 0.8}``; a key may also be the import path of a
    declaration (``my_module.WEIGHT_NORMS``).
    """

    def __init__(self, chosen: dict[str, tuple[Analysis, Sampling, Any]] | None = None) -> None:
        self.chosen = dict(chosen or {})

    @classmethod
    def parse(cls, raw: Any, where: str) -> Analyses:
        """From a sweep file's ``analyses:`` mapping; one message for the first key or value that is wrong."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ZooError(f"{where}: expected a mapping of analyses ({', '.join(_names())}); got {raw!r}")
        chosen = {}
        for name, settings in raw.items():
            if name not in _names() and "." not in name:
                raise ZooError(
                    f"{where}: unknown key {name!r}; accepted: {', '.join(_names())} (or a declaration's import path)"
                )
            analysis, settings = get_analysis(name), settings or {}
            if not isinstance(settings, dict):
                raise ZooError(f"{where}: {name} takes a mapping of its settings; got {settings!r}")
            sampled = [option.name for option in dataclasses.fields(Sampling)]
            own = [option.name for option in dataclasses.fields(analysis.options)]
            unknown = next((key for key in settings if key not in sampled + own), None)
            if unknown is not None:
                raise ZooError(f"{where}: {name}: unknown key {unknown!r}; accepted: {', '.join(sampled + own)}")
            here = f"{where}: {name}"
            sampling = build_options(Sampling, {k: v for k, v in settings.items() if k in sampled}, here)
            options = build_options(analysis.options, {k: v for k, v in settings.items() if k in own}, here)
            chosen[analysis.name] = (analysis, sampling, options)
        return cls(chosen)

    def __iter__(self):
        return iter(self.chosen.values())

    def __bool__(self) -> bool:
        return bool(self.chosen)

    def settings(self) -> dict[str, dict[str, Any]]:
        """Every chosen analysis's settings by name, as plain data (what a study's definition records)."""
        return {
            name: {**dataclasses.asdict(sampling), **dataclasses.asdict(options)}
            for name, (_, sampling, options) in self.chosen.items()
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analyses) and self.chosen == other.chosen

    def __repr__(self) -> str:
        return f"Analyses({', '.join(self.chosen)})"


def _names() -> list[str]:
    return [analysis.name for analysis in list_analyses()]


@dataclass(frozen=True)
class TrialSpec:
    config: str
    grid: dict[str, list] = field(default_factory=dict)
    name: str | None = None  # the family label in tables and plots (default: the model's class)


@dataclass(frozen=True)
class SearchSpec:
    config: str
    space: dict[str, dict]
    trials: int = 20
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    sampler_seed: int | None = None


@dataclass(frozen=True)
class Figures:
    """Which summary numbers the report draws as distributions and over epochs (default: chosen by kind)."""

    distributions: list[str] | None = None
    over_epochs: list[str] | None = None


@dataclass(frozen=True)
class SweepSpec:
    output: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_seeds: bool = False
    common: dict[str, Any] = field(default_factory=dict)
    analyses: Analyses = field(default_factory=Analyses)
    trials: list[TrialSpec] = field(default_factory=list)
    search: SearchSpec | None = None
    figures: Figures = field(default_factory=Figures)


def read_sweep(path: str | Path) -> SweepSpec:
    """The sweep file as a checked ``SweepSpec``: one message for the first key or value that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"sweep file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ZooError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None
    if raw is None:
        raise ZooError(f"{path} is empty; a sweep names at least trials: [{{config: configs/fc.yaml}}]")
    if isinstance(raw.get("seeds") if isinstance(raw, dict) else None, dict):
        raw = {**raw, "seeds": _seed_range(raw["seeds"], path)}
    if isinstance(raw, dict) and "analyses" in raw:  # checked against the registered declarations
        raw = {**raw, "analyses": Analyses.parse(raw["analyses"], f"{path}: analyses")}
    spec = _build(SweepSpec, raw, f"{path}")
    if not spec.trials and spec.search is None:
        raise ZooError(f"{path}: lists no trials; give 'trials: [{{config: configs/fc.yaml, grid: {{...}}}}]'")
    for index, trial in enumerate(spec.trials, start=1):
        if not Path(trial.config).is_file():
            raise ZooError(
                f"{path}: trials[{index}].config {trial.config!r} not found "
                "(paths are relative to where the sweep runs)"
            )
        for key, values in trial.grid.items():
            _check_key(key, f"{path}: trials[{index}].grid")
            if not values:
                raise ZooError(f"{path}: trials[{index}].grid.{key} is an empty list; give at least one value")
    for key in spec.common:
        _check_key(key, f"{path}: common")
    for key in spec.search.space if spec.search else ():
        _check_key(key, f"{path}: search.space")
    for kind in ("distributions", "over_epochs"):  # a key no row can hold would draw nothing, without a word
        for key in getattr(spec.figures, kind) or ():
            if declared_number(key) is None:
                known = ", ".join(f"{a.name}.{number.key}" for a in list_analyses() for number in a.numbers)
                raise ZooError(
                    f"{path}: figures.{kind}: {key!r} is no number an analysis declares ('*' stands for a layer "
                    f"or an output pair); the numbers: {known}"
                )
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ZooError(f"{path}: seeds repeat: {spec.seeds}")
    if spec.batch_seeds and spec.seeds != list(range(spec.seeds[0], spec.seeds[0] + len(spec.seeds))):
        raise ZooError(f"{path}: batch_seeds trains seeds s, s+1, ...; give consecutive seeds, got {spec.seeds}")
    return spec


def _check_key(key: str, where: str) -> None:
    if key.startswith(RUN_FOLDER):
        raise ZooError(
            f"{where}.{key}: a sweep puts each trial's run in <output>/runs/<trial>/version_N; "
            f"leave {', '.join(name + '.*' for name in RUN_FOLDER)} out"
        )


def _seed_range(value: dict, path: Path) -> list[int]:
    """``seeds: {first: 0, count: 100}``, shorthand for a list of consecutive seeds."""
    unknown = set(value) - {"first", "count"}
    if unknown or "count" not in value:
        raise ZooError(f"{path}: seeds as a mapping takes first and count, e.g. {{first: 0, count: 100}}; got {value}")
    first, count = value.get("first", 0), value["count"]
    if not all(isinstance(number, int) and not isinstance(number, bool) for number in (first, count)) or count < 1:
        raise ZooError(f"{path}: seeds.first and seeds.count must be whole numbers, count ≥ 1; got {value}")
    return list(range(first, first + count))


def _build(cls: type, raw: Any, where: str) -> Any:
    """A dataclass instance from YAML data, checking every key and type against the annotations."""
    if not isinstance(raw, dict):
        raise ZooError(
            f"{where}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}; got {raw!r}"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in raw if key not in names]
    if unknown:
        raise ZooError(f"{where}: unknown key {unknown[0]!r}; accepted: {', '.join(names)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ZooError(f"{where}: {missing[0]} is required")
    return cls(**{key: _check(hints[key], value, f"{where}: {key}") for key, value in raw.items()})


def _check(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint) or (hint if hint in (list, dict) else None), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        return _check(options[0], value, where) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return _build(hint, {} if value is None else value, where)
    if origin is typing.Literal:
        if value not in args:
            raise ZooError(f"{where} is {value!r}; accepted: {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ZooError(f"{where} must be a list, got {_shown(value)}")
        return (
            [_check(args[0], item, f"{where}[{index}]") for index, item in enumerate(value, start=1)] if args else value
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ZooError(f"{where} must be a mapping, got {_shown(value)}")
        value_type = args[1] if args else Any
        return {key: _check(value_type, item, f"{where}.{key}") for key, item in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ZooError(f"{where} must be {'a whole number' if hint is int else hint.__name__}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    shown = json.dumps(value) if isinstance(value, (int, float, str, bool)) else repr(value)
    return f"{type(value).__name__} {shown}"


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a config, its overrides, its seed(s), and where its folders go."""

    config: str
    overrides: dict[str, Any] = field(hash=False)
    seeds: tuple[int, ...]
    output: str
    common: dict[str, Any] = field(hash=False, default_factory=dict)
    family: str | None = None

    @property
    def id(self) -> str:
        """A readable, stable, file-safe name: ``fc-hidden128-s0`` (``s0-99`` for a batch of seeds)."""
        parts = [Path(self.config).stem]
        for key, value in self.overrides.items():
            shown = "x".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(re.sub(r"[^A-Za-z0-9.+]+", "", key.rsplit(".", 1)[-1] + shown)[:40])
        seeds = f"s{self.seeds[0]}" if len(self.seeds) == 1 else f"s{self.seeds[0]}-{self.seeds[-1]}"
        return "-".join([*parts, seeds])

    @property
    def label(self) -> str:
        """How the console names the trial: ``fc hidden=[128] seed 0`` (its family's name, if it has one)."""
        settings = settings_text(self.overrides)
        seeds = f"seed {self.seeds[0]}" if len(self.seeds) == 1 else f"seeds {self.seeds[0]}..{self.seeds[-1]}"
        return " ".join(part for part in (self.family or Path(self.config).stem, settings, seeds) if part)

    def flags(self) -> list[str]:
        """The overrides as CLI flags; text goes as typed (the CLI reads other values as YAML, text as it is)."""
        values = {**self.common, **self.overrides}
        return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]

    def arguments(self, devices: str = "1") -> list[str]:
        """The trial's whole command line: its config, the sweep's flags, and its run folder under the output."""
        args = [
            "--config",
            self.config,
            f"--trainer.devices={devices}",
            *self.flags(),
            f"--trainer.callbacks+={TIMER}",  # after the sweep's own trainer.callbacks, which replace the list
            f"--seed_everything={self.seeds[0]}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            f"--trainer.logger.init_args.save_dir={Path(self.output) / 'runs'}",
            f"--trainer.logger.init_args.name={self.id}",
            "--trainer.logger.init_args.version=null",  # a fresh version_N in <output>/runs/<trial>/, never elsewhere
        ]
        return args + ([f"--population={len(self.seeds)}"] if len(self.seeds) > 1 else [])


def check_trials(trials: list[Trial]) -> None:
    """Every trial's whole configuration, checked by the CLI's own parser before anything runs (nothing built)."""
    from zoo.cli import check_arguments

    seen = set()
    for trial in trials:
        settings = (trial.config, json.dumps(trial.overrides, sort_keys=True), len(trial.seeds) > 1)
        if settings not in seen:  # the seeds do not change what is checked
            seen.add(settings)
            check_arguments(trial.arguments(), f"trial {trial.label}")


def settings_text(overrides: dict[str, Any], *, exact: bool = False) -> str:
    """Overrides as people read them: ``hidden=[128] lr=0.001235`` (the last part of each key; floats
    :func:`rounded`, unless ``exact``)."""
    return " ".join(
        f"{key.rsplit('.', 1)[-1]}={json.dumps(value if exact else rounded(value))}" for key, value in overrides.items()
    )


def rounded(value: Any) -> Any:
    """``value`` with every float to 4 significant digits, for people to read: a search samples a learning
    rate to 17 (``0.0012345678901234567`` reads ``0.001235``). Names only; a study groups by the exact value."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return value


def expand(spec: SweepSpec, output: str) -> list[Trial]:
    """Every config × its grid's combinations × every seed (or the batch of seeds), seed by seed: a study
    stopped half-way holds every configuration on the seeds it reached, pairs for a paired comparison."""
    seed_groups = [tuple(spec.seeds)] if spec.batch_seeds else [(seed,) for seed in spec.seeds]
    configurations = [
        (entry, dict(zip(entry.grid, values)))
        for entry in spec.trials
        for values in _product(list(entry.grid.values()))
    ]
    trials = [
        Trial(entry.config, overrides, seeds, output, spec.common, entry.name)
        for seeds in seed_groups
        for entry, overrides in configurations
    ]
    ids = [trial.id for trial in trials]
    clash = next((name for name in ids if ids.count(name) > 1), None)
    if clash:
        raise ZooError(f"two trials would share the name {clash!r}; make their grids differ in more than case")
    return trials


def _product(lists: list[list]) -> list[tuple]:
    combos: list[tuple] = [()]
    for values in lists:
        combos = [(*combo, value) for combo in combos for value in values]
    return combos
