"""What an analysis declares once, and the registry that everything else reads.

A callback, a sweep's ``analyses:``, a study's rows, ``summary.md``, the console and the
TensorBoard dashboard never name an analysis: they iterate over :func:`list_analyses` and
read its :class:`Analysis`. Adding an analysis is one :func:`register_analysis` call.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from matplotlib.figure import Figure

from zoo.errors import ZooError


@dataclass(frozen=True)
class Number:
    """One number of ``result.summary()``; ``*`` in ``key`` stands for a layer (or an output pair).

    ``meaning`` is the label a table or a figure shows (with its unit); ``compared`` puts it in
    ``summary.md``'s side-by-side table (a ``*`` key averaged over layers); ``over_epochs``
    keeps it at every analysed epoch in a study's rows; ``drawn`` names the study figures it gets
    by default (``distribution`` over seeds, ``over_epochs``); ``band`` marks ±band in them;
    ``bounds`` is the range the number cannot leave (a cosine's [−1, 1]): figures draw it on that range.
    """

    key: str
    meaning: str
    better: Literal["higher", "lower"] | None = None
    compared: bool = False
    over_epochs: bool = False
    drawn: tuple[Literal["distribution", "over_epochs"], ...] = ()
    band: float | None = None
    bounds: tuple[float, float] | None = None

    def matches(self, key: str) -> bool:
        return re.fullmatch(re.escape(self.key).replace(r"\*", ".+"), key) is not None

    @property
    def label(self) -> str:
        """``meaning``, with which way is better when there is one."""
        return f"{self.meaning}, {self.better} is better" if self.better else self.meaning

    def label_of(self, key: str) -> str:
        """The label of one column ``key`` this number matches: ``fc1: dead neurons``, a layer or pair named."""
        if "*" not in self.key:
            return self.label
        prefix, _, suffix = self.key.partition("*")
        which = key[len(prefix) : len(key) - len(suffix)]
        which = f"{prefix.strip('/').rsplit('/', 1)[-1]} {which}" if prefix else which  # "pair a_b", "fc1"
        meaning = re.sub(r", mean over layers| \(mean over layers\)", "", self.meaning)  # one layer's, not a mean
        return f"{which}: {meaning}, {self.better} is better" if self.better else f"{which}: {meaning}"


@dataclass(frozen=True)
class Samples:
    """The data an analysis looks at: ``inputs`` and ``targets`` of one split, and what to call them.

    ``images`` returns training images on demand (priors for figures such as activation
    maximization fit on them); ``None`` where no figure needs them (a study's rows).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    output_names: list[str]
    split: str = ""
    input_range: tuple[Any, Any] = (0.0, 1.0)
    images: Callable[[], torch.Tensor] | None = None

    @classmethod
    def of(cls, datamodule: Any, split: str, max_samples: int, *, images: bool = True) -> Samples:
        """The first ``max_samples`` of ``split`` of a ``ZooDataModule`` (the split is shuffled once)."""
        inputs, targets = (tensor[:max_samples] for tensor in datamodule.split(split))
        prior_images = (lambda: datamodule.split("train")[0]) if images else None
        names = list(datamodule.output_names)
        return cls(inputs, targets, names, split, tuple(datamodule.input_range), prior_images)


@dataclass(frozen=True)
class NoOptions:
    """The options of an analysis that has none."""


def _no_figures(result: Any, *, history: list[dict]) -> dict[str, Figure]:
    return {}


def _nothing(result: Any) -> dict:
    return {}


@dataclass(frozen=True)
class Analysis:
    """One analysis, declared once.

    Args:
        name: the folder under ``analysis/``, the TensorBoard prefix, the key under a sweep's
            ``analyses:`` and the prefix of a study's columns.
        title: how people call it (dashboard sections, the console).
        options: a frozen dataclass of its settings, every one with a default.
        run: ``run(model, samples, options, *, layers, cache) -> result``: the pure function
            (``cache`` keeps what is worth computing once per run).
        run_members: the same for every member of a population at once, ``-> [result, ...]`` in
            member order, each equal to ``run`` of that member (batched over members); ``None``:
            members are run one by one.
        numbers: what ``result.summary()`` holds that tables, figures and studies show.
        figures: ``figures(result, *, history) -> {tag: Figure}``; ``history`` is every result of
            the run so far as JSON, this one last.
        texts, histograms: ``result -> {tag: text}``, ``{tag: tensor}`` for TensorBoard.
        layout: TensorBoard custom-scalar charts, ``{title: regex}`` of the scalars after ``<name>/``.
        describe: ``result -> text``: the result in a few lines, for a console.
    """

    name: str
    title: str
    run: Callable[..., Any]
    options: type = NoOptions
    run_members: Callable[..., list[Any]] | None = None
    numbers: tuple[Number, ...] = ()
    figures: Callable[..., dict[str, Figure]] = _no_figures
    texts: Callable[[Any], dict[str, str]] = _nothing
    histograms: Callable[[Any], dict[str, torch.Tensor]] = _nothing
    layout: dict[str, str] = field(default_factory=dict)
    describe: Callable[[Any], str] = repr

    def summary(self, result: Any) -> dict[str, float]:
        """The result's scalar numbers, flat: TensorBoard scalars, a study's columns."""
        return result.summary()

    def run_each_member(self, model: Any, samples: Samples, options: Any, *, layers: Any, cache: dict) -> list[Any]:
        """``run`` of every member of ``model`` (a single model is its own only member), batched where declared."""
        if self.run_members is not None:
            return self.run_members(model, samples, options, layers=layers, cache=cache)
        return [self.run(member, samples, options, layers=layers, cache=cache) for member in model.members()]

    def make_options(self, raw: Any = None, *, where: str = "") -> Any:
        """The options from a mapping (a config's, a sweep file's), checked: one message for the first wrong key."""
        if isinstance(raw, self.options):
            return raw
        return build_options(self.options, raw or {}, where or f"{self.name} options")

    def figures_for(self, result: Any, *, history: list[dict] | None = None) -> dict[str, Figure]:
        return self.figures(result, history=history or [])


_ANALYSES: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis) -> Analysis:
    """Make ``analysis`` known to callbacks, sweeps, summaries and the dashboard; returns it."""
    _ANALYSES[analysis.name] = analysis
    return analysis


def list_analyses() -> list[Analysis]:
    """Every registered analysis, in the order registered."""
    return list(_ANALYSES.values())


def get_analysis(name: str | Analysis) -> Analysis:
    """An analysis by its name, or by the import path of its declaration (``package.module.NAME``)."""
    if isinstance(name, Analysis):
        return name
    if name in _ANALYSES:
        return _ANALYSES[name]
    if "." in name:
        module, _, attribute = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            found = None
        if isinstance(found, Analysis):
            return register_analysis(found)
    accepted = ", ".join(_ANALYSES)
    raise ZooError(f"no analysis {name!r}; accepted: {accepted} (or the import path of an Analysis declaration)")


def declared_number(column: str) -> tuple[Analysis, Number] | None:
    """The analysis and the number behind a study's column ``<analysis>.<key>``, if one declares it."""
    name, _, key = column.partition(".")
    analysis = _ANALYSES.get(name)
    found = next((number for number in analysis.numbers if number.matches(key)), None) if analysis else None
    return (analysis, found) if found else None


def figures_for(result: Any, analysis: str | Analysis, *, history: list[dict] | None = None) -> dict[str, Figure]:
    """The named figures of ``result`` (of ``analysis``), wherever the result came from."""
    return get_analysis(analysis).figures_for(result, history=history)


def build_options(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    """A frozen options dataclass from a mapping, every key and value checked against its annotations."""
    if not isinstance(raw, Mapping):
        raise ZooError(f"{where}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}")
    names = [option.name for option in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        if key not in names:
            raise ZooError(f"{where}: unknown key {key!r}; accepted: {', '.join(names) or 'none'}")
        _check(hints[key], value, f"{where}: {key}")
    return cls(**{key: float(value) if hints[key] is float else value for key, value in raw.items()})


def _check(hint: Any, value: Any, where: str) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        hint = next(arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ZooError(f"{where} is {value!r}; accepted: {', '.join(map(str, args))}")
        return
    expected = origin or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is Any:
        return
    if not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool)):
        raise ZooError(f"{where} must be {'a whole number' if expected is int else expected.__name__}, got {value!r}")
