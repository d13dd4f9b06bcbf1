"""``SET`` callback: Sparse Evolutionary Training of a model's sparse layers, and the topology's evolution logged."""

from __future__ import annotations

import time
import traceback

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from zoo.analyses.topology import TOPOLOGY
from zoo.analysis.topology import named_sparse_layers, sparse_topology
from zoo.callbacks.schedule import BEFORE_TRAINING, epoch_label
from zoo.errors import ZooError
from zoo.models.contract import holds_members
from zoo.models.set import SETStep, set_step, step_generator
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
        if holds_members(pl_module):
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
            self.write(trainer, pl_module, BEFORE_TRAINING)

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
        self.write(trainer, pl_module, epoch - 1, steps=steps, seconds=seconds)

    def write(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        epoch: int,
        *,
        steps: dict[str, SETStep] | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Log the topology after epoch ``epoch`` (and the steps that made it), on rank zero.

        Like an analysis, logging never ends the run: a failure is one warning, its traceback in
        ``analysis/set/errors.log`` (the rewiring itself is done by then).
        """
        if not trainer.is_global_zero:
            return
        writer = AnalysisWriter.of_run(trainer, self.name, epoch_label(epoch), background=False)  # a few, small
        when = "before training" if epoch == BEFORE_TRAINING else f"after epoch {epoch}"
        try:
            result = sparse_topology(pl_module, steps=steps, zeta=self.zeta, seconds=seconds, epoch=epoch)
            written = writer.write(TOPOLOGY, result, epoch=epoch)
        except Exception as error:
            log = writer.log_error(f"{when}: {traceback.format_exc()}")
            rank_zero_warn(
                f"SET's logs {when} failed, training goes on: {error}" + (f"; traceback in {log}" if log else "")
            )
            return
        if written is not None:
            self.written.append(str(written))
        if steps:
            moved = f"{result.changed_fraction:.1%} of {result.connections:,} connections moved"
            rank_zero_info(f"SET {when}: {moved} ({seconds:.2f} s)")


def sparse_layers(model: torch.nn.Module) -> dict[str, SparseLinear]:
    """The model's sparse layers, input side first, named as :func:`~zoo.analysis.topology.named_sparse_layers` does."""
    return {name: layer for name, (_, layer) in named_sparse_layers(model).items()}


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
