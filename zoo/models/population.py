"""Population: N seeds of one architecture trained at once, as one batched model.

Population studies (100 seeds of a 4-32-32-2 network) spend their time in per-step
overhead when run one model at a time. A ``Population`` builds each member exactly as a
single run with that member's seed would (the CPU generator seeded as ``torch.manual_seed(seed)``
seeds it, then the architecture's constructor), stacks the members' parameters along a leading member
dimension (``torch.func.stack_module_state``) and computes every member's forward pass
in one call (``torch.func.vmap`` over ``functional_call``). The loss is the sum of the
members' own losses, so each member receives exactly its own gradient, and Adam, whose
state is per parameter element, gives each member exactly its own update. Gradient
clipping by norm is done per member, so no member's step depends on another's.

All members see the same batches (one data module); a member differs from the single
run of its seed only in that, and in the dropout masks it draws. ``member(i)`` gives
member i back as an ordinary model of its architecture, for analyses and
``zoo.load_model(path, member=i)``.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torch import nn
from torchmetrics import Metric

from zoo.errors import TrainingDiverged, ZooError
from zoo.models.base import TRAINABLE, Batch, ZooModule
from zoo.models.contract import Edit, Probe, Record, SparseLayer
from zoo.models.registry import create_model, get_model_class, register_model
from zoo.task import Task, metric_names

SHARED_INPUT_MIN_FEATURES = 64
"""Inputs at least this wide have the members' first layer computed as one matrix product (see ``_batched``).

Measured on a CPU step (forward, backward, Adam): 20 FCNet [128] on MNIST (784 inputs) 38 → 33 ms;
100 and 1,000 multimult nets (4 inputs), 2.6 → 2.7 ms and 32 → 56 ms: with so few inputs the
product is nothing, and re-laying its output out per member costs more than the per-member products.
"""
MEMBERS = "members"  # where every member's own numbers are logged: members/val_acc/007

SPREAD = ("std", "min", "max", "mean_minus_std", "mean_plus_std")
"""The members' spread, logged as ``<stage>/<metric>_<kind>``; the last two bound a band (mean ± std)."""


@register_model
class Population(ZooModule):
    """``size`` members of ``architecture`` with the hyper-parameters ``member``, seeds ``first_seed + i``.

    Args:
        architecture: a registered architecture, e.g. ``FCNet``.
        size: number of members.
        member: the architecture's hyper-parameters (``hidden``, ``activation``, ...), as a
            single run's ``model.init_args`` would hold them.
        first_seed: seed of member 0; member i has ``first_seed + i``. Default: the run's
            ``seed_everything``, so member i is the model of a single run seeded ``seed + i``.

    From the CLI, ``--population N`` wraps the configured model: ``python -m zoo fit
    --config configs/multimult.yaml --population 100``.
    """

    kind: ClassVar[Literal["architecture", "population"]] = "population"

    def __init__(
        self,
        architecture: str = "FCNet",
        size: int = 10,
        member: dict[str, Any] | None = None,
        first_seed: int | None = None,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_outputs: int = 10,
        task: Task = "classification",
    ) -> None:
        super().__init__(input_shape, num_outputs, task)
        if size < 1:
            raise ZooError(f"model.size (the population's) must be at least 1, got {size}")
        if architecture == type(self).__name__:
            raise ZooError("a Population's members cannot be populations")
        self.member_architecture, self.size, self.member_arguments = architecture, size, dict(member or {})
        if first_seed is None:
            first_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            self.hparams["first_seed"] = first_seed  # the checkpoint records the seeds actually used
        self.seeds = [first_seed + index for index in range(size)]
        token = TRAINABLE.set(False)  # built for their weights alone: stacked below, then dropped
        try:
            members = [self._build_member(seed) for seed in self.seeds]
        finally:
            TRAINABLE.reset(token)
        if any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in members[0].modules()):
            raise ZooError("a Population cannot hold batch-norm members yet (their running statistics)")
        parameters, buffers = torch.func.stack_module_state(members)
        self.stacked_parameters = nn.ParameterDict({_key(name): value for name, value in parameters.items()})
        for name, value in buffers.items():
            self.register_buffer(f"stacked__{_key(name)}", value)
        self.buffer_names = list(buffers)
        template = copy.deepcopy(members[0]).to("meta")
        for module in template.modules():  # CSR kernels have no batching rule; the dense path is the same function
            if isinstance(module, SparseLayer):
                module.dense_equivalent = True
        self.shared_input_layer = members[0].input_layer if self.in_features >= SHARED_INPUT_MIN_FEATURES else None
        if self.shared_input_layer is not None:  # computed for all members at once, see _batched
            template.set_submodule(self.shared_input_layer, InputLayerOutput())
        object.__setattr__(self, "template", template)  # not a submodule: its meta tensors are no parameters
        self.member_counts = members[0].parameter_counts()

    def _build_member(self, seed: int) -> ZooModule:
        """The model a single run seeded ``seed`` builds (the run's random state is left as it was)."""
        shape = {"input_shape": self.input_shape, "num_outputs": self.num_outputs, "task": self.task}
        with torch.random.fork_rng(devices=[]):
            # the CPU generator alone draws a member's weights; torch.manual_seed also seeds every lazy
            # accelerator (CUDA, XPU, MTIA), formatting a stack trace for each: 260 µs a member, 1.4 µs here
            torch.default_generator.manual_seed(seed)
            try:
                return create_model(self.member_architecture, **self.member_arguments, **shape)
            except TypeError as error:
                accepted = inspect.signature(get_model_class(self.member_architecture)).parameters
                raise ZooError(
                    f"model.member has an argument {self.member_architecture} does not take ({error}); "
                    f"accepted: {', '.join(name for name in accepted if name not in shape)}"
                ) from None

    # -- the batched forward ------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(members, N, num_outputs)``: every member's outputs for the same inputs."""
        return self._batched(x, lambda state, x: torch.func.functional_call(self.template, state, (x,)))

    def forward_with_hidden(
        self, x: torch.Tensor, edit: Edit | None = None, *, member_data: Any = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every member's outputs ``(members, N, num_outputs)`` and activations ``{probe: (members, N, units)}``.

        One vmapped call; each member's forward has its own record, and ``edit`` sees one
        member's ``(N, units)`` activations at a time, as it would on that member alone.
        ``member_data``, tensors with the members first (any nesting), gives each member's
        edit its own slice: ``edit(name, activations, data)`` (a projection on that member's
        principal components, say).
        """

        def member(
            state: tuple[dict, dict], x: torch.Tensor, data: Any = None
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            own = edit if member_data is None else lambda name, values: edit(name, values, data)
            record = Record(own)
            outputs = torch.func.functional_call(self.template, state, (x,), {"record": record})
            return outputs, record.hidden(self.probes, self.template)

        return self._batched(x, member, member_data)

    def _batched(self, x: torch.Tensor, member_forward: Callable[..., Any], member_data: Any = None) -> Any:
        """``member_forward((parameters, buffers), x[, data])`` of one member, for every member at once (vmap).

        Where the members' first layer reads the input itself (their ``input_layer``), it is computed
        here for all members as one matrix product on the shared input, not a product per
        member inside vmap; each member's forward then takes its slice as that layer's output.
        """
        self.template.train(self.training)
        parameters = self.member_parameters()
        buffers = {name: getattr(self, f"stacked__{_key(name)}") for name in self.buffer_names}
        layer = self.shared_input_layer
        stub = self.template.get_submodule(layer) if layer is not None else None
        if stub is not None:
            weight, bias = (parameters.pop(f"{layer}.{name}") for name in ("weight", "bias"))
            first = F.linear(x.flatten(1), weight.flatten(0, 1), bias.flatten())  # (N, members × width)
            # members first, as vmap returns its outputs: an activation returned from a batch dimension
            # other than 0 would be a moved copy, not the tensor the outputs were computed from
            shared = first.view(len(x), self.size, -1).transpose(0, 1)

            def member_forward_on(state: tuple[dict, dict], first: torch.Tensor, *data: Any) -> Any:
                stub.output = first
                return member_forward(state, x, *data)

            inputs, dims = ((parameters, buffers), shared), (0, 0)
            call = member_forward_on
        else:
            inputs, dims, call = ((parameters, buffers), x), (0, None), member_forward
        if member_data is not None:
            inputs, dims = (*inputs, member_data), (*dims, 0)
        try:
            return torch.func.vmap(call, in_dims=dims, randomness="different")(*inputs)
        finally:
            if stub is not None:
                stub.output = None  # no batched tensor (nor the graph behind it) outlives the call

    def member(self, index: int) -> ZooModule:
        """Member ``index`` as an ordinary model of its architecture, on this population's device."""
        if not 0 <= index < self.size:
            raise ZooError(f"member {index} does not exist; this population has members 0..{self.size - 1}")
        model = self._build_member(self.seeds[index])
        state = {_name(key): value[index] for key, value in self.stacked_parameters.items()}
        state.update({name: getattr(self, f"stacked__{_key(name)}")[index] for name in self.buffer_names})
        model.load_state_dict({name: value.detach().clone() for name, value in state.items()})
        return model.to(self.device)

    def member_parameters(self) -> dict[str, nn.Parameter]:
        """Every member's parameters stacked, ``(members, ...)``, under a single member's parameter names."""
        return {_name(key): value for key, value in self.stacked_parameters.items()}

    def members(self) -> Iterator[ZooModule]:
        """Every member in turn, as :meth:`member` gives it."""
        return (self.member(index) for index in range(self.size))

    @property
    def architecture(self) -> str:
        """The members' architecture."""
        return self.member_architecture

    def by_member(self, computed: torch.Tensor) -> torch.Tensor:
        """A population computes ``(members, N, ...)`` already."""
        return computed

    @property
    def probes(self) -> dict[str, Probe]:
        """The members' probe points (every member has the same): what analyses of members can read."""
        return self.template.probes

    @property
    def rowwise_after_probes(self) -> bool:
        """The members' (see :attr:`ZooModule.rowwise_after_probes`): each member's edit sees that member alone."""
        return self.template.rowwise_after_probes

    def parameter_counts(self) -> dict[str, int]:
        """All members' parameters together (each member's are ``member_counts``)."""
        return {kind: count * self.size for kind, count in self.member_counts.items()}

    def on_fit_start(self) -> None:
        rank_zero_info(
            f"Population of {self.size} {self.member_architecture} (seeds {self.seeds[0]}..{self.seeds[-1]}): "
            f"{self.member_counts['nonzero']:,} nonzero parameters each"
        )
        super().on_fit_start()

    # -- training and evaluation, per member ------------------------------------------------------

    def member_losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``(members,)``: each member's own mean loss on the batch."""
        members, batch = outputs.shape[:2]
        if self.task == "classification":
            per_sample = F.cross_entropy(outputs.flatten(0, 1), targets.repeat(members), reduction="none")
            return per_sample.view(members, batch).mean(1)
        return (outputs - targets).square().mean(dim=(1, 2))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The sum of the members' losses: its gradient is every member's own gradient, side by side."""
        return self.member_losses(outputs, targets).sum()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        losses = self.member_losses(outputs, targets)
        logging_step = self._logging_step()
        self.finite_watch.observe(losses, self.global_step)
        if losses.device.type == "cpu" or logging_step:  # on a GPU, read the flags (a sync) only now and then
            self._check_finite()
        self.train_metrics.update(outputs.detach(), targets)
        if logging_step:
            self.log("train/loss", losses.detach().mean(), prog_bar=True, batch_size=len(inputs))
        return losses.sum()

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        self._log_members("train", self.train_metrics)

    def _check_finite(self) -> None:
        failure = self.finite_watch.failed()
        if failure is not None:
            diverged, steps, _ = failure
            seeds = [self.seeds[index] for index in diverged]
            raise TrainingDiverged(
                f"the training loss of member(s) {diverged} (seeds {seeds}) stopped being finite by step "
                f"{max(steps)} (epoch {self.current_epoch}); training stopped and these weights were not "
                f"saved. Last good checkpoint: {self._last_good_checkpoint()}. {self._divergence_hint()}"
            )

    def _evaluation_step(self, batch: Batch, stage: str, metrics: Metric) -> torch.Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        loss = self.member_losses(outputs, targets).mean()
        metrics.update(outputs, targets)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(inputs), sync_dist=True)
        return loss

    def on_validation_epoch_end(self) -> None:
        self._log_members("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_members("test", self.test_metrics)

    def _log_members(self, stage: str, metrics: Metric) -> None:
        """The population's mean as ``<stage>/<metric>``, its spread, and every member under ``members/``."""
        if not metrics.update_called:
            return
        spread, members = {}, {}
        for name, values in metrics.compute().items():
            values = values.float()
            self.log(f"{stage}/{name}", values.mean(), prog_bar=True)
            mean = values.mean()
            std = values.std() if len(values) > 1 else values.new_zeros(())  # n − 1, as everywhere in zoo
            statistics = torch.stack([std, values.min(), values.max(), mean - std, mean + std]).tolist()
            spread.update({f"{stage}/{name}_{kind}": value for kind, value in zip(SPREAD, statistics)})
            members[f"{MEMBERS}/{stage}_{name}"] = values.detach().cpu()
        self._log_each_member(spread, members)
        metrics.reset()

    def _log_each_member(self, spread: dict[str, float], members: dict[str, torch.Tensor]) -> None:
        """The spread and every member's numbers, to the loggers in one call and to ``trainer.callback_metrics``.

        ``self.log`` costs about a millisecond of Lightning bookkeeping per key: for 100 members,
        more than a whole multimult epoch of arithmetic at every validation; the ten keys of a regression's
        spread took a third of an epoch end's logging (5.7 → 3.8 ms of CPU with them here, 100 members).
        These numbers are logged at the step Lightning logs the epoch's other numbers (:func:`epoch_log_step`).
        ``callback_metrics`` holds each metric's members as one vector (``members/val_acc``, member
        order; :func:`flat_metrics` names them as the loggers do): every checkpoint callback deep-copies
        ``callback_metrics`` twice an epoch, 25 ms with a scalar per member of 100, 170 ms of 1,000.
        """
        from pytorch_lightning.loggers import TensorBoardLogger

        from zoo.hparams import write_scalars

        trainer = self.trainer
        if trainer.sanity_checking:
            return
        trainer.callback_metrics.update({key: torch.tensor(value) for key, value in spread.items()})
        trainer.callback_metrics.update(members)
        if not trainer.is_global_zero:
            return
        step, each = epoch_log_step(trainer), flat_metrics(members)
        for logger in trainer.loggers:
            # TensorBoard gets the members in one event (13 ms for 1,000, not 156), unless its logger prefixes tags
            if isinstance(logger, TensorBoardLogger) and not getattr(logger, "_prefix", ""):
                logger.log_metrics(spread, step=step)
                write_scalars(logger.experiment, each, step=step)
            else:
                logger.log_metrics({**spread, **each}, step=step)

    def _metrics(self, stage: str) -> Metric:
        return MemberMetrics(self.task, int(self.hparams["size"]), self.num_outputs)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clipping by norm, member by member (a global norm would let one member's gradient shrink another's)."""
        if not gradient_clip_val or gradient_clip_algorithm == "value":  # by value: elementwise, already per member
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        grads = [parameter.grad for parameter in self.stacked_parameters.values() if parameter.grad is not None]
        norms = torch.stack([grad.flatten(1).norm(dim=1) for grad in grads]).norm(dim=0)  # (members,)
        scale = (gradient_clip_val / (norms + 1e-6)).clamp(max=1.0)  # as torch's clip_grad_norm_, per member
        for grad in grads:
            grad.mul_(scale.view(-1, *([1] * (grad.ndim - 1))))


class InputLayerOutput(nn.Module):
    """Stands for a member's first layer in the template: returns the output computed for all members at once."""

    output: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output


class MemberMetrics(Metric):
    """The task's metrics for every member at once: accuracy, or MSE and R² (uniform over outputs)."""

    full_state_update = False

    def __init__(self, task: str, members: int, outputs: int) -> None:
        super().__init__()
        self.task = task
        shape = (members,) if task == "classification" else (members, outputs)
        for state in ("correct",) if task == "classification" else ("squared_error", "sum", "sum_squares"):
            self.add_state(state, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.count += len(targets)
        if self.task == "classification":
            self.correct += (outputs.argmax(-1) == targets).sum(1)
            return
        self.squared_error += (outputs - targets).double().square().sum(1)
        self.sum += targets.double().sum(0)
        self.sum_squares += targets.double().square().sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        if self.task == "classification":
            return {"acc": self.correct / self.count}
        total = self.sum_squares - self.sum.square() / self.count  # Σ (y − ȳ)² per member and output
        mse = self.squared_error.mean(1) / self.count
        r2 = (1 - self.squared_error / total).mean(1)
        return dict(zip(metric_names("regression"), (mse, r2)))


def member_key(stage: str, metric: str, member: int) -> str:
    """The name member ``member``'s ``metric`` of ``stage`` is logged under: ``members/val_acc/007``."""
    return f"{MEMBERS}/{stage}_{metric}/{member:03d}"


def flat_metrics(metrics: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``trainer.callback_metrics`` as floats, a population's member vectors by member as its loggers name them.

    ``members/val_acc`` (one value per member) becomes ``members/val_acc/000``, ``members/val_acc/001``, ...
    """
    flat = {}
    for key, value in metrics.items():
        if key.startswith(f"{MEMBERS}/") and value.ndim == 1:
            flat.update({f"{key}/{index:03d}": member for index, member in enumerate(value.tolist())})
        else:
            flat[key] = float(value)
    return flat


def epoch_log_step(trainer: Any) -> int:
    """The step at which Lightning logs the numbers of the epoch (or evaluation) ending now.

    Lightning counts logging steps in ``_batches_that_stepped`` (its loggers' step; the number of
    optimizer steps when there is one optimizer) and logs a training epoch's numbers at its last
    batch's step, one before the count, which has already moved past it when ``on_train_epoch_end``
    runs; an evaluation's numbers at the count itself (the batch that triggered it is still being counted).
    """
    stepped = trainer.fit_loop.epoch_loop._batches_that_stepped
    return stepped - 1 if trainer.training else stepped


def _key(name: str) -> str:
    """A parameter name as a key of the stacked state (module paths use dots, which keys may not)."""
    return name.replace(".", "/")


def _name(key: str) -> str:
    return key.replace("/", ".")
