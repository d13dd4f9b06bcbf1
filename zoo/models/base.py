"""``ZooModule``: the training logic every architecture shares.

An architecture only builds its network and implements ``forward_with_hidden``.
That one method is the contract the analyses rely on: it returns the outputs
together with the hidden activations, as an ordered ``{layer name: (N, units)}``
dict whose tensors are part of the autograd graph of the outputs, so an
analysis can take ∂output/∂activation without knowing the architecture.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import MeanSquaredError, R2Score

from zoo.data.datasets import Task
from zoo.errors import TrainingDiverged, ZooError

Batch = tuple[torch.Tensor, torch.Tensor]
Edit = Callable[[str, torch.Tensor], torch.Tensor]


def monitor_for(task: Task) -> tuple[str, str]:
    """The metric that picks the best checkpoint of a task, and whether higher or lower is better."""
    return ("val/acc", "max") if task == "classification" else ("val/loss", "min")


class ZooModule(pl.LightningModule):
    """Base of every zoo architecture.

    Args:
        input_shape: shape of one input sample, e.g. ``(1, 28, 28)``.
        num_outputs: number of classes (classification) or targets (regression).
        task: ``classification`` trains with cross-entropy on logits and reports accuracy;
            ``regression`` trains with mean squared error and reports MSE and R².

    The CLI links all three from the data module, so configs never repeat them.
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), num_outputs: int = 10, task: Task = "classification") -> None:
        super().__init__()
        if num_outputs <= 0:
            raise ZooError(f"model.num_outputs must be positive, got {num_outputs}")
        if task not in ("classification", "regression"):
            raise ZooError(f"model.task must be 'classification' or 'regression', got {task!r}")
        self.save_hyperparameters()
        self.input_shape = tuple(input_shape)
        self.num_outputs = num_outputs
        self.task = task
        self.train_metrics = self._metrics("train")
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")

    @property
    def in_features(self) -> int:
        """Length of a flattened input sample."""
        return math.prod(self.input_shape)

    @abstractmethod
    def forward_with_hidden(self, x: torch.Tensor, edit: Edit | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Outputs ``(N, num_outputs)`` and the hidden activations ``{name: (N, units)}``, in layer order.

        ``edit(name, activations)``, when given, returns the activations the rest of the network
        then uses (and that are reported), e.g. their projection on a few principal components.
        """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]

    def hidden_activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The hidden activations of a batch, named and in layer order."""
        return self.forward_with_hidden(x)[1]

    @contextmanager
    def analysis_mode(self) -> Iterator[ZooModule]:
        """The model as analyses need it, restored afterwards.

        Eval mode (no dropout; batch norm uses its running statistics, so samples stay
        independent), and layers with special kernels (``SparseLinear``'s CSR path) compute
        the same function with ordinary ops, which ``torch.func``/vmap can batch.
        """
        was_training = self.training
        switchable = [module for module in self.modules() if hasattr(module, "dense_equivalent")]
        self.eval()
        for module in switchable:
            module.dense_equivalent = True
        try:
            yield self
        finally:
            for module in switchable:
                module.dense_equivalent = False
            self.train(was_training)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters stored, and those that really exist (a masked layer stores zeros it never learns).

        A submodule that stores more than it learns says so with a ``nonzero_parameters()`` method.
        """
        nonzero = 0
        for module in self.modules():
            if hasattr(module, "nonzero_parameters"):
                nonzero += module.nonzero_parameters()
            else:
                nonzero += sum(p.numel() for p in module.parameters(recurse=False))
        return {"stored": sum(p.numel() for p in self.parameters()), "nonzero": nonzero}

    def on_fit_start(self) -> None:
        counts = self.parameter_counts()
        rank_zero_info(f"{type(self).__name__}: {counts['nonzero']:,} nonzero parameters ({counts['stored']:,} stored)")
        for logger in self.loggers:
            logger.log_metrics({f"params/{kind}": float(count) for kind, count in counts.items()}, step=0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the architecture (``zoo.load_model(path)`` needs nothing but the file) and the RNG states.

        With the random states saved at the end of an epoch, a run resumed from that checkpoint
        draws the same dropout masks as one that never stopped. Non-finite weights are never saved.
        """
        broken = [name for name, value in checkpoint["state_dict"].items() if value.is_floating_point() and not torch.isfinite(value).all()]
        if broken:
            raise TrainingDiverged(
                f"refusing to save a checkpoint at step {self.global_step}: {broken[0]} holds NaN or infinite values. "
                f"Last good checkpoint: {self._last_good_checkpoint()}."
            )
        checkpoint["zoo"] = {"model": type(self).__name__}
        checkpoint["rng_states"] = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states:
            random.setstate(states["python"])
            torch.set_rng_state(states["torch"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])

    def _last_good_checkpoint(self) -> str:
        callback = self._trainer.checkpoint_callback if self._trainer is not None else None
        path = callback.last_model_path or callback.best_model_path if callback is not None else ""
        return path or "none yet"

    @property
    def monitor(self) -> tuple[str, str]:
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
        value = loss.item()  # a float check: 0.2 µs, where torch.isfinite(loss) costs 4 µs a step
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at step {self.global_step} (epoch {self.current_epoch}); "
                f"training stopped and these weights were not saved. Last good checkpoint: {self._last_good_checkpoint()}. "
                "A lower learning rate (optimizer.init_args.lr) or gradient clipping (--trainer.gradient_clip_val) usually helps."
            )
        self.train_metrics.update(outputs.detach(), targets)
        # Each self.log call costs ~0.7 ms of Lightning bookkeeping (a sixth of an MNIST step on CPU),
        # so the step loss is logged only on the steps the logger writes: the curve is the same.
        if (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0 or self.trainer.fast_dev_run:
            self.log("train/loss", loss, prog_bar=True, batch_size=len(inputs))
        return loss

    def on_train_epoch_end(self) -> None:
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
            metrics = {"acc": MulticlassAccuracy(num_classes=self.num_outputs, average="micro")}
        else:
            metrics = {"mse": MeanSquaredError(), "r2": R2Score(multioutput="uniform_average")}
        return MetricCollection(metrics, prefix=f"{stage}/")
