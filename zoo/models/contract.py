"""The contract between architectures and analyses, declared once.

An architecture builds its layers, places a :class:`Probe` after each hidden layer whose
activations an analysis may look at, and writes ``forward(x, record=None)``, handing
``record`` to every probe it passes: ``h = self.probe(h, record)``.
:class:`~zoo.models.base.ZooModule` does the rest: ``forward_with_hidden(x, edit)`` makes a
:class:`Record` for that one call, and returns the outputs and what the probes recorded; an
analysis may replace a layer's activations there (``edit``); and it switches to analysis
mode. Nothing is stored on a module during a forward, so calls may nest, interleave or run
under ``torch.func.vmap``. Analyses see models only through :class:`Analysable`, and read what
a probe is (its layer, its ColumNet column, its width) from the probe's metadata, never from
its name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from zoo.errors import ZooError

Edit = Callable[[str, torch.Tensor], torch.Tensor]
"""``edit(probe name, activations) -> activations`` the rest of the network then uses."""


class Record:
    """The activations one forward pass met at the probes, and the edit it applies there.

    Made for one call and passed down explicitly (``forward(x, record)``), never kept on a
    module: two calls, nested or interleaved, each have their own.

    Example::

        record = Record(edit=lambda name, a: a.clamp(min=0))
        outputs = model(x, record=record)
        hidden = record.hidden(model.probes, model)  # {probe name: (N, units)}
    """

    def __init__(self, edit: Edit | None = None) -> None:
        self.edit = edit
        self.activations: dict[str, torch.Tensor] = {}

    def take(self, probe: Probe, activations: torch.Tensor) -> torch.Tensor:
        """Apply the edit at ``probe`` (if any), keep the result, and give it back for the rest of the network."""
        if self.edit is not None:
            activations = self.edit(probe.name, activations)
        self.activations[probe.name] = activations
        return activations

    def hidden(self, probes: dict[str, Probe], model: nn.Module) -> dict[str, torch.Tensor]:
        """The recorded activations in the order ``probes`` declares them; every probe must have been passed."""
        missing = [name for name in probes if name not in self.activations]
        if missing:
            raise RuntimeError(
                f"{type(model).__name__}.forward never passed through probe {missing[0]!r} "
                "(its forward must hand its record to every probe: self.probe(h, record))"
            )
        return {name: self.activations[name] for name in probes}


class Probe(nn.Module):
    """A named point where hidden activations are read, and may be replaced; identity otherwise.

    Args:
        layer: the layer's name within its column, e.g. ``fc2``.
        units: width of the activations, ``(N, units)``.
        column: the ColumNet column it belongs to (``col1_relu``), or ``None``.
    """

    def __init__(self, layer: str, units: int, column: str | None = None) -> None:
        super().__init__()
        self.layer, self.units, self.column = layer, units, column

    @property
    def name(self) -> str:
        """How analyses and results name this point: ``fc2``, or ``col1_relu/fc2`` in a column."""
        return f"{self.column}/{self.layer}" if self.column else self.layer

    def forward(self, activations: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        return activations if record is None else record.take(self, activations)

    def extra_repr(self) -> str:
        return f"{self.name!r}, units={self.units}"


class SparseLayer(nn.Module):
    """A layer that learns fewer weights than it stores, or computes with kernels vmap cannot batch.

    The base asks two things of it: how many parameters it really learns
    (:meth:`nonzero_parameters`), and, while ``dense_equivalent`` is set (analysis mode),
    to compute the same function with ordinary tensor operations.
    """

    dense_equivalent: bool = False

    def nonzero_parameters(self) -> int:
        raise NotImplementedError


@runtime_checkable
class Analysable(Protocol):
    """What an analysis needs of a model. Every ``ZooModule`` is one."""

    task: str
    num_outputs: int
    input_shape: tuple[int, ...]

    @property
    def probes(self) -> dict[str, Probe]: ...

    def forward_with_hidden(
        self, x: torch.Tensor, edit: Edit | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def analysis_mode(self) -> AbstractContextManager: ...

    def members(self) -> Iterator[Analysable]: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


def holds_members(model: object) -> bool:
    """Whether ``model`` holds several members (a population), read from its declared ``kind``: nothing is built.

    ``members()`` answers the same question, but a population builds its first member to answer it.
    """
    return getattr(model, "kind", "architecture") == "population"


def member_count(model: object) -> int:
    """How many members ``model`` holds (1 for a single model), without building any."""
    return int(model.size) if holds_members(model) else 1


def member_nonzero_parameters(model: object) -> int:
    """One member's nonzero parameters: every member of a population has as many (its connections are counted)."""
    return model.parameter_counts()["nonzero"] // member_count(model)


def require_one_model(model: Analysable, analysis: str) -> None:
    """Analyses read one model's activations; a population is analysed member by member, never as a stack.
    A model without the contract (a plain ``nn.Module``) is told what it lacks, not met by an AttributeError."""
    missing = [name for name in ("probes", "forward_with_hidden", "analysis_mode", "task", "num_outputs")
               if not hasattr(model, name)]  # fmt: skip
    if missing:
        raise ZooError(
            f"{analysis} analyses a model that names its hidden layers (zoo.models.Analysable); this "
            f"{type(model).__name__} has no {', '.join(missing)}: subclass zoo.models.ZooModule and declare its "
            "probes, as tests/residual_mlp.py does"
        )
    if holds_members(model):
        raise ZooError(
            f"{analysis} analyses one model, and this {type(model).__name__} holds several; analyse each of its "
            "members() on its own (as the analysis callbacks do)"
        )


def output_names_for(
    model: Analysable, inputs: torch.Tensor, targets: torch.Tensor, output_names: Sequence[str] | None, analysis: str
) -> list[str]:
    """The outputs' names (their indices by default), after checking that the samples and names fit the model:
    a shorter targets tensor was read as fewer samples, and too few names dropped the pairs without a word."""
    if len(targets) != len(inputs):
        raise ZooError(f"{analysis}: {len(inputs)} inputs and {len(targets)} targets; give one target per input")
    if output_names is None:
        return [str(k) for k in range(model.num_outputs)]
    if len(output_names) != model.num_outputs:
        raise ZooError(
            f"{analysis}: {len(output_names)} output names for the model's {model.num_outputs} outputs; name each once"
        )
    return list(output_names)


def select_probes(model: Analysable, layers: list[str] | tuple[str, ...] | None) -> list[str]:
    """The probe names an analysis asked for (all by default), or one clear error naming the real ones."""
    names = list(model.probes)
    if layers is None:
        return names
    unknown = [layer for layer in layers if layer not in model.probes]
    if unknown:
        raise ZooError(f"unknown layer {unknown[0]!r}; {type(model).__name__}'s hidden layers are: {', '.join(names)}")
    return list(layers)
