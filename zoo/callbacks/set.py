"""``SET`` callback: Sparse Evolutionary Training of a model's sparse layers, and the topology's evolution logged."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from zoo.callbacks.schedule import BEFORE_TRAINING, epoch_label
from zoo.errors import ZooError
from zoo.figures import degree_histograms, pixel_map
from zoo.models.set import SETStep, fan_in, fan_out, set_step, step_generator
from zoo.models.sparse import ConnectionMove, SparseLinear
from zoo.writer import AnalysisWriter


class SET(pl.Callback):
    """Sparse Evolutionary Training (Mocanu et al. 2018): rewire every sparse layer after every n-th epoch.

    After every ``every_n_epochs``-th epoch (just before the next one starts, so that the
    checkpoint of an epoch holds the network that epoch validated), each :class:`SparseLinear`
    of the model loses the fraction ``zeta`` of its positive and of its negative weights closest
    to zero (and any weight exactly zero) and grows as many connections at random empty
    positions, starting at weight zero (:func:`zoo.models.set.set_step`). The optimizer's state
    follows the connections: kept ones keep theirs (moved to their new CSR slot), removed and
    regrown ones start from zero. Each step's randomness comes from the layer's connectivity
    seed, its index and the epoch, and the topology lives in the model's buffers, so a resumed
    run rewires exactly as one never stopped.

    Logs under ``set/`` and writes ``<run dir>/analysis/set/``, before training (``init``) and
    after each rewiring: the fraction of connections changed (scalars), each layer's fan-in
    distribution (histograms and a figure), the first layer's connections per input pixel (an
    image, for image inputs), and a JSON file per step.

    Args:
        zeta: fraction of the positive and of the negative weights removed at each step, in (0, 1).
        every_n_epochs: rewire after every n-th epoch.
        until_epoch: the last epoch (counted from 0, as the logs do) that starts with a rewiring;
            from it on the topology is final. ``None``: rewire until the end.
    """

    name = "set"

    def __init__(self, zeta: float = 0.3, every_n_epochs: int = 1, until_epoch: int | None = None) -> None:
        if isinstance(zeta, bool) or not isinstance(zeta, (int, float)) or not 0 < zeta < 1:
            raise self.error(f"zeta must lie strictly between 0 and 1 (the fraction of weights rewired), got {zeta}")
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise self.error(f"every_n_epochs must be an integer of at least 1, got {every_n_epochs}")
        if until_epoch is not None and (
            isinstance(until_epoch, bool) or not isinstance(until_epoch, int) or until_epoch < 1
        ):
            raise self.error(
                f"until_epoch must be an integer of at least 1 (null: rewire until the end), got {until_epoch}"
            )
        self.zeta, self.every_n_epochs, self.until_epoch = float(zeta), every_n_epochs, until_epoch
        self.written: list[str] = []  # the JSON files written, for the run's closing summary

    def error(self, message: str) -> ZooError:
        return ZooError(f"{type(self).__name__}: {message}")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if next(pl_module.members()) is not pl_module:
            raise self.error(
                f"SET rewires one model's sparse layers in place, and a {type(pl_module).__name__} keeps its "
                "members' layers stacked; train SET one seed at a time (leave out --population)"
            )
        if not sparse_layers(pl_module):
            raise self.error(
                f"{type(pl_module).__name__} has no sparse layers to rewire; SET trains a SparseNet "
                "(model.class_path: zoo.models.SparseNet) or any model with SparseLinear layers"
            )

    def rewires_before(self, epoch: int) -> bool:
        """Whether the epoch ``epoch`` (counted from 0) starts with a rewiring."""
        late = self.until_epoch is not None and epoch > self.until_epoch
        return epoch > 0 and epoch % self.every_n_epochs == 0 and not late

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0:
            self.write(trainer, pl_module, BEFORE_TRAINING, {}, 0.0)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self.rewires_before(epoch):
            return
        start = time.perf_counter()
        steps = {}
        for index, (name, layer) in enumerate(sparse_layers(pl_module).items(), start=1):
            step = set_step(layer, self.zeta, step_generator(layer.seed, index, epoch))
            for optimizer in trainer.optimizers:
                carry_optimizer_state(optimizer, layer.connection_parameter, step.move)
            steps[name] = step
        seconds = time.perf_counter() - start
        self.write(trainer, pl_module, epoch - 1, steps, seconds)

    def write(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, steps: dict[str, SETStep], seconds: float
    ) -> None:
        """Log the topology after epoch ``epoch`` (and the steps that made it), on rank zero.

        Like an analysis, logging never ends the run: a failure is one warning, its traceback in
        ``analysis/set/errors.log`` (the rewiring itself is done by then).
        """
        if not trainer.is_global_zero:
            return
        writer = AnalysisWriter(trainer, self.name, epoch_label(epoch))
        try:
            self._write(writer, pl_module, epoch, steps, seconds)
        except Exception as error:
            when = "before training" if epoch == BEFORE_TRAINING else f"after epoch {epoch}"
            log = writer.log_error(f"{when}: {traceback.format_exc()}")
            rank_zero_warn(
                f"SET's logs {when} failed, training goes on: {error}" + (f"; traceback in {log}" if log else "")
            )

    def _write(
        self,
        writer: AnalysisWriter,
        pl_module: pl.LightningModule,
        epoch: int,
        steps: dict[str, SETStep],
        seconds: float,
    ) -> None:
        named = _named_sparse_layers(pl_module)
        layers = {name: layer for name, (_, layer) in named.items()}
        result: dict[str, Any] = {"epoch": epoch, "zeta": self.zeta, "seconds": seconds, "layers": {}}
        if steps:
            changed = sum(step.new for step in steps.values()) / sum(step.connections for step in steps.values())
            result["changed_fraction"] = changed
            writer.scalars({"changed_fraction": changed, "seconds": seconds})
        fan_ins = {}
        for name, layer in layers.items():
            degrees = fan_in(layer).cpu()
            fan_ins[f"{name} ({layer.in_features}→{layer.out_features})"] = degrees
            entry: dict[str, Any] = {
                "module": named[name][0],
                "shape": [layer.out_features, layer.in_features],
                "connections": layer.connections,
                "fan_in": {
                    "min": int(degrees.min()),
                    "max": int(degrees.max()),
                    "mean": float(degrees.float().mean()),
                    "std": float(degrees.float().std()) if len(degrees) > 1 else 0.0,
                    "counts": torch.bincount(degrees).tolist(),  # units with fan-in 0, 1, 2, ...
                },
            }
            if name in steps:
                step = steps[name]
                entry.update(
                    removed={
                        "positive": step.removal.positive,
                        "negative": step.removal.negative,
                        "zero": step.removal.zero,
                    },
                    regrown=step.regrown,
                    new=step.new,
                    changed_fraction=step.changed_fraction,
                )
                writer.scalars({f"{name}/changed_fraction": step.changed_fraction})
            writer.histogram(f"{name}/fan_in", degrees)
            result["layers"][name] = entry
        result["connections"] = sum(entry["connections"] for entry in result["layers"].values())
        first_name, first = next(iter(layers.items()))
        pixels = fan_out(first).cpu()
        result["input_connections"] = pixels.tolist()
        shape = tuple(pl_module.input_shape)
        when = "before training" if epoch == BEFORE_TRAINING else f"after epoch {epoch}"
        if len(shape) >= 2 and math.prod(shape) == first.in_features:
            image = pixels.view(-1, *shape[-2:]).sum(0)
            title = f"Connections per input pixel\n{first_name} ({first.in_features}→{first.out_features}), {when}"
            figure = pixel_map(image, title, "connections")
            writer.figure("input_connections", figure)
        figure = degree_histograms(fan_ins, f"Fan-in per unit, {when}", "fan-in (connections into a unit)")
        writer.figure("fan_in", figure)
        written = writer.json(result)
        if written is not None:
            self.written.append(str(written))
        if steps:
            rank_zero_info(
                f"SET {when}: {result['changed_fraction']:.1%} of {result['connections']:,} connections moved "
                f"({seconds:.2f} s)"
            )


def sparse_layers(model: torch.nn.Module) -> dict[str, SparseLinear]:
    """The model's sparse layers, input side first, named ``layer1``, ``layer2``, ..."""
    return {name: layer for name, (_, layer) in _named_sparse_layers(model).items()}


def _named_sparse_layers(model: torch.nn.Module) -> dict[str, tuple[str, SparseLinear]]:
    found = [(path, module) for path, module in model.named_modules() if isinstance(module, SparseLinear)]
    return {f"layer{index}": (path, module) for index, (path, module) in enumerate(found, start=1)}


def carry_optimizer_state(optimizer: torch.optim.Optimizer, parameter: torch.nn.Parameter, move: ConnectionMove) -> int:
    """Move every per-connection state tensor the optimizer keeps for ``parameter`` as the connections moved.

    Adam's ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``), SGD's ``momentum_buffer``: any state
    tensor shaped like the parameter. Kept connections keep their state (at their new slot), removed
    and regrown ones get zero, so no state is ever carried to another position. Scalar state (Adam's
    step count) is shared by all connections and stays. Returns how many tensors were moved.
    """
    moved = 0
    for value in optimizer.state.get(parameter, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
            move.apply_(value)
            moved += 1
    return moved
