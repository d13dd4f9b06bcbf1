"""``ZooModule``: the training logic every architecture shares, and its half of the analysis contract.

An architecture builds its network in ``__init__``, places a :class:`~zoo.models.contract.Probe`
after each hidden layer, and implements ``forward(x, record=None)``, handing ``record`` to each
probe. Everything else is here: training, evaluation and metrics for the task, checkpoints,
the models it holds (``members()``), and what analyses use (capturing and editing hidden
activations at the probes, analysis mode, parameter counts).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import ClassVar, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics import Metric, MetricCollection
from torchmetrics.regression import MeanSquaredError, R2Score

from zoo.errors import TrainingDiverged, ZooError
from zoo.models.contract import Edit, Probe, Record, SparseLayer
from zoo.task import TASKS, Monitor, Task, monitor_for

Batch = tuple[torch.Tensor, torch.Tensor]
PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})
TRAINABLE = ContextVar("TRAINABLE", default=True)
"""False while a population builds members only for their weights: they get no metrics (90% of building one)."""


class FiniteWatch:
    """Whether training losses stayed finite, watched without a host–device synchronisation per step.

    On the CPU reading a loss costs nothing, so each step is checked as it happens. On another
    device the flags stay there: each step adds a few asynchronous kernels, and the owner reads
    them (one sync) every few steps and at the end of each epoch. The first non-finite loss of
    each member and its step are kept on the device, so the message names them exactly.

    ``eager`` reads every step as it comes; default: on the CPU only.
    """

    def __init__(self, *, eager: bool | None = None) -> None:
        self.eager = eager
        self.finite: torch.Tensor | None = None  # (members,) every loss so far finite
        self.first_bad: torch.Tensor | None = None  # the loss at each member's first non-finite step
        self.bad_step: torch.Tensor | None = None  # that step
        self.failure: tuple[list[int], list[int], list[float]] | None = None  # found on the CPU

    def observe(self, losses: torch.Tensor, step: int) -> None:
        """Note this step's losses, ``(members,)`` or a scalar; on the CPU, a non-finite one is recorded now."""
        losses = losses.detach().reshape(-1)
        if self.eager or (self.eager is None and losses.device.type == "cpu"):
            finite = math.isfinite(losses.item()) if len(losses) == 1 else bool(torch.isfinite(losses).all())
            if self.failure is None and not finite:
                values = losses.tolist()
                bad = [index for index, value in enumerate(values) if not math.isfinite(value)]
                self.failure = (bad, [step] * len(bad), [values[index] for index in bad])
            return
        if self.finite is None:
            self.finite = torch.ones_like(losses, dtype=torch.bool)
            self.first_bad, self.bad_step = torch.zeros_like(losses), torch.zeros_like(losses, dtype=torch.long)
        self.first_bad = torch.where(self.finite, losses, self.first_bad)  # frozen once a member failed
        self.bad_step.masked_fill_(self.finite, step)
        self.finite &= torch.isfinite(losses)

    def failed(self) -> tuple[list[int], list[int], list[float]] | None:
        """The members whose loss stopped being finite, their first such step and loss; None while all are."""
        if self.failure is None and self.finite is not None and not bool(self.finite.all()):  # the one sync
            bad = (~self.finite).nonzero().flatten().tolist()
            self.failure = (bad, self.bad_step[bad].tolist(), self.first_bad[bad].tolist())
        return self.failure


class Accuracy(Metric):
    """The share of samples whose largest output is their class (torchmetrics' micro accuracy, to the bit).

    Updated on every training step, so kept to two counts: torchmetrics' ``MulticlassAccuracy``
    validates its arguments and keeps per-class statistics, 40 µs a step instead of 16.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.correct += (outputs.argmax(-1) == targets).sum()
        self.total += len(targets)

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total


def count_parameters(module: torch.nn.Module) -> dict[str, int]:
    """Parameters ``module`` stores, and those that really exist (sparse layers learn fewer than they store)."""
    nonzero = 0
    for part in module.modules():
        if isinstance(part, SparseLayer):
            nonzero += part.nonzero_parameters()
        else:
            nonzero += sum(p.numel() for p in part.parameters(recurse=False))
    return {"stored": sum(p.numel() for p in module.parameters()), "nonzero": nonzero}


class ZooModule(pl.LightningModule):
    """Base of every zoo architecture; not a network by itself.

    Args:
        input_shape: shape of one input sample, e.g. ``(1, 28, 28)``.
        num_outputs: number of classes (classification) or targets (regression).
        task: ``classification`` trains with cross-entropy on logits and reports accuracy;
            ``regression`` trains with mean squared error and reports MSE and R².

    The CLI links all three from the data module, so configs never repeat them.
    """

    kind: ClassVar[Literal["architecture", "population"]] = "architecture"
    """What the class is: an architecture (``list_models()`` lists these), or a population of an architecture."""

    rowwise_after_probes: ClassVar[bool] = False
    """Whether an edit at a probe may hand the rest of the network more rows than it received.

    True where everything after every probe treats samples (rows) one by one and never reaches
    back to activations from before the probe, as a chain of layers does (FCNet, SparseNet); false
    where the rest of the network mixes rows or joins branches (ColumNet's columns). Where true,
    an analysis may run the layers before a probe once and hand the rest several edited variants
    of each sample, stacked along the batch (the compression check: every k at once).
    """

    def __init__(
        self, input_shape: tuple[int, ...] = (1, 28, 28), num_outputs: int = 10, task: Task = "classification"
    ) -> None:
        super().__init__()
        if type(self) is ZooModule:
            from zoo.models.registry import list_models

            raise ZooError(f"ZooModule is the base of zoo's architectures; choose one: {', '.join(list_models())}")
        if num_outputs <= 0:
            raise ZooError(f"model.num_outputs must be positive, got {num_outputs}")
        if task not in TASKS:
            raise ZooError(f"model.task must be one of {', '.join(TASKS)}; got {task!r}")
        self.save_hyperparameters(logger=False)  # zoo.runs.HParamsRecord logs the whole config instead
        self.input_shape = tuple(input_shape)
        self.num_outputs = num_outputs
        self.task = task
        trainable = TRAINABLE.get()
        self.train_metrics = self._metrics("train") if trainable else MetricCollection({})
        self.val_metrics = self._metrics("val") if trainable else MetricCollection({})
        self.test_metrics = self._metrics("test") if trainable else MetricCollection({})
        self.finite_watch = FiniteWatch()

    def __setattr__(self, name: str, value: object) -> None:
        """Plain values (``_current_fx_name``, flags) set directly, without ``nn.Module``'s bookkeeping.

        Lightning sets such attributes around every hook it calls, some 50 times a training step;
        ``nn.Module.__setattr__`` spends about 1 µs on each checking for parameters, buffers and
        submodules (5% of a small MNIST step). Assignments that touch those still go through it.
        """
        state = self.__dict__
        if (
            type(value) in PLAIN_VALUES
            and "_modules" in state
            and name not in state["_parameters"]
            and name not in state["_buffers"]
            and name not in state["_modules"]
        ):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def architecture(self) -> str:
        """The architecture's registered name: this class's, or a population's members' class."""
        return type(self).__name__

    @property
    def input_layer(self) -> str | None:
        """The ``nn.Linear`` (its module name) that reads the flattened input first, if the architecture has one.

        A population computes it for all members as one matrix product on their shared input.
        """
        return None

    def members(self) -> Iterator[ZooModule]:
        """The models this one holds, each an ordinary single model: a single model is its own only member."""
        yield self

    def member(self, index: int) -> ZooModule:
        """Member ``index`` as an ordinary model (see :meth:`members`)."""
        if index != 0:
            name = type(self).__name__
            raise ZooError(f"this {name} is one model, not a population: it has member 0 only, not {index}")
        return self

    def by_member(self, computed: torch.Tensor) -> torch.Tensor:
        """What this model computed per sample (outputs, activations) with the members first: ``(members, N, ...)``."""
        return computed.unsqueeze(0)

    @property
    def in_features(self) -> int:
        """Length of a flattened input sample."""
        return math.prod(self.input_shape)

    @property
    def probes(self) -> dict[str, Probe]:
        """The architecture's probe points by name, in the order it declared them."""
        return {module.name: module for module in self.modules() if isinstance(module, Probe)}

    def forward_with_hidden(
        self, x: torch.Tensor, edit: Edit | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Outputs ``(N, num_outputs)`` and the activations at every probe ``{name: (N, units)}``.

        The activations are the very tensors the outputs are computed from (part of their
        autograd graph). ``edit(name, activations)``, when given, returns what the rest of the
        network uses instead (and what is reported), e.g. a projection on principal components.
        The call's :class:`~zoo.models.contract.Record` is its own: calls may nest (one inside
        another's ``edit``) or run under ``torch.func.vmap``.
        """
        record = Record(edit)
        outputs = self(x, record=record)
        return outputs, record.hidden(self.probes, self)

    def hidden_activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations at every probe for a batch, named and in order."""
        return self.forward_with_hidden(x)[1]

    @contextmanager
    def analysis_mode(self) -> Iterator[ZooModule]:
        """The model as analyses need it, restored afterwards.

        Eval mode (no dropout; batch norm uses its running statistics, so samples stay
        independent), and sparse layers compute the same function with ordinary ops,
        which ``torch.func``/vmap can batch.
        """
        was_training = self.training
        sparse = [module for module in self.modules() if isinstance(module, SparseLayer)]
        self.eval()
        for module in sparse:
            module.dense_equivalent = True
        try:
            yield self
        finally:
            for module in sparse:
                module.dense_equivalent = False
            self.train(was_training)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters stored, and those that really exist (a masked layer stores zeros it never learns)."""
        return count_parameters(self)

    def on_fit_start(self) -> None:
        counts = self.parameter_counts()
        rank_zero_info(f"{type(self).__name__}: {counts['nonzero']:,} nonzero parameters ({counts['stored']:,} stored)")
        for logger in self.loggers:
            logger.log_metrics({f"params/{kind}": float(count) for kind, count in counts.items()}, step=0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the architecture (``zoo.load_model(path)`` needs nothing but the file) and the RNG states.

        With the random states saved at the end of an epoch, a run resumed from that checkpoint
        draws the same dropout masks as one that never stopped. Non-finite weights are never saved,
        nor the weights of a run whose loss stopped being finite.
        """
        self._check_finite()
        broken = [
            name
            for name, value in checkpoint["state_dict"].items()
            if value.is_floating_point() and not torch.isfinite(value).all()
        ]
        if broken:
            raise TrainingDiverged(
                f"refusing to save a checkpoint at step {self.global_step}: {broken[0]} holds NaN or infinite values. "
                f"Last good checkpoint: {self._last_good_checkpoint()}."
            )
        checkpoint["zoo"] = {
            "model": type(self).__name__,
            "module": type(self).__module__,  # where an architecture registered outside zoo is defined
            "training": self._training_setup(),
        }
        checkpoint["rng_states"] = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def _training_setup(self) -> dict[str, str]:
        """The optimizer and schedule that made the weights: a resume must build the same ones."""
        if self._trainer is None or not self.trainer.optimizers:
            return {}
        setup = {"optimizer": type(self.trainer.optimizers[0]).__name__}
        if self.trainer.lr_scheduler_configs:
            setup["lr_scheduler"] = type(self.trainer.lr_scheduler_configs[0].scheduler).__name__
        return setup

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed run continues the random streams; loading weights for a look changes no state."""
        states = checkpoint.get("rng_states")
        if states and self._trainer is not None:
            random.setstate(states["python"])
            torch.set_rng_state(states["torch"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])

    def _last_good_checkpoint(self) -> str:
        """The newest checkpoint written so far, for the message of a run that failed."""
        callbacks = self._trainer.checkpoint_callbacks if self._trainer is not None else []
        paths = [path for callback in callbacks for path in (callback.last_model_path, callback.best_model_path)]
        existing = [Path(path) for path in paths if path and Path(path).is_file()]
        return str(max(existing, key=lambda path: path.stat().st_mtime)) if existing else "none yet"

    @property
    def monitor(self) -> Monitor:
        """The metric that picks the best checkpoint, and whether higher or lower is better."""
        return monitor_for(self.task)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(outputs, targets)
        return F.mse_loss(outputs, targets)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        loss = self.loss(outputs, targets)
        logging_step = self._logging_step()
        self.finite_watch.observe(loss, self.global_step)
        if loss.device.type == "cpu" or logging_step:  # on a GPU, read the flag (a sync) only now and then
            self._check_finite()
        self.train_metrics.update(outputs.detach(), targets)
        # Each self.log call costs ~0.7 ms of Lightning bookkeeping (a sixth of an MNIST step on CPU),
        # so the step loss is logged only on the steps the logger writes: the curve is the same.
        if logging_step:
            self.log("train/loss", loss, prog_bar=True, batch_size=len(inputs))
        return loss

    def _logging_step(self) -> bool:
        """Whether the logger writes this step (every ``log_every_n_steps``, and every step of a fast dev run)."""
        trainer = self.trainer
        return (self.global_step + 1) % max(trainer.log_every_n_steps, 1) == 0 or bool(trainer.fast_dev_run)

    def _check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` if a training loss stopped being finite (on a GPU, a sync)."""
        failure = self.finite_watch.failed()
        if failure is not None:
            _, (step,), (value,) = failure
            raise TrainingDiverged(
                f"the training loss became {value} at step {step} (epoch {self.current_epoch}); "
                "training stopped and these weights were not saved. Last good checkpoint: "
                f"{self._last_good_checkpoint()}. {self._divergence_hint()}"
            )

    def _divergence_hint(self) -> str:
        """What usually helps a loss that stopped being finite; in float16, an eps that rounds to 0 first."""
        trainer = self._trainer
        if trainer is not None and str(trainer.precision) in ("16-true", "16"):
            eps = [group.get("eps") for optimizer in trainer.optimizers for group in optimizer.param_groups]
            tiny = [value for value in eps if isinstance(value, float) and value < 6e-8]  # float16's smallest: 6e-8
            if tiny:
                return (
                    f"In 16-true precision the optimizer's eps ({tiny[0]:g}) rounds to 0 in float16: set "
                    "--optimizer.init_args.eps 1e-4, or train in --trainer.precision 16-mixed or bf16-mixed."
                )
        return (
            "A lower learning rate (optimizer.init_args.lr) or gradient clipping (--trainer.gradient_clip_val) "
            "usually helps."
        )

    def on_train_epoch_end(self) -> None:
        self._check_finite()  # before the epoch's checkpoint
        self.log_dict(self.train_metrics)  # Lightning computes and resets the metrics

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "val", self.val_metrics)

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "test", self.test_metrics)

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Logits (classification) or predicted targets (regression)."""
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam at 1e-3 when no ``optimizer:`` is given (the CLI's block replaces this)."""
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def _evaluation_step(self, batch: Batch, stage: str, metrics: MetricCollection) -> torch.Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        loss = self.loss(outputs, targets)
        metrics.update(outputs, targets)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(inputs), sync_dist=True)  # exact mean over ranks
        self.log_dict(metrics, prog_bar=True)
        return loss

    def _metrics(self, stage: str) -> MetricCollection:
        if self.task == "classification":
            metrics = {"acc": Accuracy()}
        else:
            metrics = {"mse": MeanSquaredError(), "r2": R2Score(multioutput="uniform_average")}
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)  # groups: bookkeeping per step
