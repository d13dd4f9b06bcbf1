"""``python -m zoo``: Lightning's own CLI, wired for the zoo.

Every LightningCLI subcommand and flag works (fit, validate, test, predict,
--print_config, --ckpt_path, --trainer.*, optimizer: and lr_scheduler: blocks).
What zoo adds: defaults every run starts from (``zoo/defaults.yaml``: TensorBoard
logger, Adam with a cosine schedule over the run, the analyses); the data module
tells the model its input shape, number of outputs and task; a checkpoint callback
keeps the best model by the task's metric plus ``last.ckpt``; ``--ckpt_path last``
resumes the newest run in its own folder; each run folder is claimed atomically and
records its environment; and user mistakes end in one message and a non-zero exit.
"""

from __future__ import annotations

import signal
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse import Namespace
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.exceptions import SIGTERMException

import zoo.callbacks  # noqa: F401  (lets --trainer.callbacks name zoo's callbacks, e.g. TaskSeparation)
from zoo.checkpoints import check_checkpoint, read_checkpoint
from zoo.data import ZooDataModule, get_dataset
from zoo.errors import ZooError
from zoo.models import ZooModule, list_models
from zoo.runs import latest_checkpoint, record_environment, reserve_version
from zoo.task import monitor_for

DEFAULTS = Path(__file__).with_name("defaults.yaml")
LIGHTNING_CHECKPOINT_KEYWORDS = ("best", "last", "hpc", "registry")
# Lightning redraws its progress bar on every step; at ~100 MNIST steps/s that is 0.3 ms of
# a ~9 ms CPU step for a display tqdm refreshes 10 times a second anyway.
PROGRESS_BAR_REFRESH_STEPS = 20


class ZooArgumentParser(LightningArgumentParser):
    """jsonargparse's parser, whose message for an unknown model also names the models there are."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if 'Parser key "model"' in message:
            message += f"\nAccepted models: {', '.join(list_models())} (or a class path to a ZooModule subclass)"
        super().error(message, ex)


class ZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for attribute in ("input_shape", "num_outputs", "task"):
            parser.link_arguments(f"data.{attribute}", f"model.init_args.{attribute}", apply_on="instantiate")
        # not a forced callback (add_lightning_class_args): instantiate_trainer adds it unless checkpointing is off
        parser.add_class_arguments(ModelCheckpoint, "checkpoint", fail_untyped=False, sub_configs=True)
        parser.set_defaults({"checkpoint.filename": "best", "checkpoint.save_top_k": 1, "checkpoint.save_last": True})
        parser.link_arguments("data.dataset", "checkpoint.monitor", compute_fn=_monitored_metric)
        parser.link_arguments("data.dataset", "checkpoint.mode", compute_fn=_monitored_mode)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """After parsing, before Lightning reads ``--ckpt_path``: complete the config and claim the run folder.

        ``last`` means the newest run folder of this logger that holds ``last.ckpt``; the resumed
        run logs into that same folder. A checkpoint that is missing, unreadable, not zoo's or of
        another architecture is refused here, with one message. A new run claims its
        ``version_<N>`` atomically, so runs started together never share a folder.
        """
        super().parse_arguments(parser, args)
        config = self.config[self.config.subcommand]
        _complete(config)
        logger = _folder_logger_arguments(config.trainer)
        root = Path(logger.save_dir) / (logger.name or "") if logger is not None else None
        if config.ckpt_path == "last" and root is not None:
            found = latest_checkpoint(root)
            if found is None:
                raise ZooError(
                    f"--ckpt_path last: no run under {root} has a checkpoints/last.ckpt yet; start without --ckpt_path"
                )
            logger.version, config.ckpt_path = found[0], str(found[1])
        self.checkpoint_to_fit = None
        if config.ckpt_path and config.ckpt_path not in LIGHTNING_CHECKPOINT_KEYWORDS:
            self.checkpoint_to_fit = read_checkpoint(
                config.ckpt_path
            )  # kept: the shapes are checked once the model exists
            held = self.checkpoint_to_fit["zoo"]["model"]
            built = config.model.class_path.rsplit(".", 1)[-1] if isinstance(config.model, Namespace) else held
            if held != built:
                raise ZooError(f"{config.ckpt_path}: holds a {held}, but this configuration builds a {built}")
        if logger is not None and logger.version is None:
            logger.version = reserve_version(root)

    def before_fit(self) -> None:
        self._prepare_run()

    def before_validate(self) -> None:
        self._prepare_run()

    def before_test(self) -> None:
        self._prepare_run()

    def before_predict(self) -> None:
        self._prepare_run()

    def _prepare_run(self) -> None:
        """Refuse a checkpoint whose tensors cannot fit the model built, and record what produced the run.

        (Lightning builds the model from the checkpoint's hyper-parameters, but the shapes linked
        from the data module can still differ: an iris checkpoint on MNIST, say.)
        """
        if self.checkpoint_to_fit is not None:
            path = self.config[self.subcommand].ckpt_path
            check_checkpoint(self.checkpoint_to_fit, path, self.model)
        if self.trainer.is_global_zero and self.trainer.loggers and self.trainer.log_dir:  # fast_dev_run logs nowhere
            record_environment(self.trainer.log_dir)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """As LightningCLI's, with zoo's checkpoint and progress bar among the callbacks.

        ``--trainer.enable_checkpointing false`` and ``fast_dev_run`` (which Lightning says saves
        nothing, yet its ``save_last`` writes ``last.ckpt`` at the end) drop zoo's checkpoint, and the
        progress bar redraws every ``PROGRESS_BAR_REFRESH_STEPS`` steps unless the config brings its own.
        """
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = {**config["trainer"], **kwargs}
        configured = trainer.get("callbacks") or []
        callbacks = list(configured) if isinstance(configured, list) else [configured]
        if trainer.get("enable_checkpointing") is not False and not trainer.get("fast_dev_run"):
            callbacks.append(config["checkpoint"])
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_STEPS))
        return super().instantiate_trainer(**{**kwargs, "callbacks": callbacks})


def _parser_defaults(run: bool) -> dict[str, Any]:
    """zoo's defaults file for the parser of each subcommand (or for the one parser without them)."""
    defaults = {"default_config_files": [str(DEFAULTS)]}
    return {subcommand: defaults for subcommand in LightningCLI.subcommands()} if run else defaults


def main(args: ArgsType = None, run: bool = True) -> ZooCLI:
    """Entry point of ``python -m zoo`` and the ``zoo`` script; returns the CLI for scripting and tests."""
    # An ``optimizer:`` block in the config is meant to replace the model's default Adam.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden.*")
    try:
        return ZooCLI(
            ZooModule,
            ZooDataModule,
            subclass_mode_model=True,
            # overwrite: a run folder reused on purpose (resuming, or no logger) keeps the latest config
            save_config_kwargs={"overwrite": True},
            parser_kwargs=_parser_defaults(run),
            parser_class=ZooArgumentParser,
            args=args,
            run=run,
        )
    except SIGTERMException:
        # Lightning's SIGTERMException is a SystemExit without a code: the run would look finished
        print("zoo: stopped by SIGTERM; resume from the last completed epoch with --ckpt_path last", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except Exception as error:
        mistake = user_mistake(error)
        if mistake is None:
            raise
        print(f"zoo: error: {mistake}", file=sys.stderr)
        sys.exit(mistake.exit_code)


def user_mistake(error: BaseException | None) -> ZooError | None:
    """The ``ZooError`` behind ``error``, if any: jsonargparse wraps errors raised while instantiating."""
    while error is not None:
        if isinstance(error, ZooError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _complete(config: Namespace) -> None:
    """Fill in what the defaults leave to the run: the logger's name and the schedule's horizon."""
    logger = config.trainer.logger
    if isinstance(logger, Namespace) and "name" in logger.get("init_args", {}) and logger.init_args.name is None:
        files = [path for path in config.get("config") or [] if path is not None]
        model = config.model.class_path.rsplit(".", 1)[-1] if isinstance(config.model, Namespace) else "run"
        logger.init_args.name = Path(str(files[-1])).stem if files else model.lower()
    schedule = config.get("lr_scheduler")
    if isinstance(schedule, Namespace) and schedule.class_path == "zoo.optim.CosineAnnealingLR":
        if schedule.init_args.get("T_max") is None:
            epochs = config.trainer.max_epochs
            if epochs is None or epochs < 1:
                raise ZooError(
                    "the cosine schedule decays over trainer.max_epochs, which is not set; "
                    "set --trainer.max_epochs or --lr_scheduler.init_args.T_max"
                )
            schedule.init_args.T_max = epochs


def _monitored_metric(dataset: str) -> str:
    return monitor_for(get_dataset(dataset).task).of("val")


def _monitored_mode(dataset: str) -> str:
    return monitor_for(get_dataset(dataset).task).mode


def _folder_logger_arguments(trainer: Namespace) -> Namespace | None:
    """The init arguments of a single logger that writes ``<save_dir>/<name>/version_<N>`` folders."""
    logger = trainer.logger
    if isinstance(logger, Namespace) and isinstance(logger.get("init_args"), Namespace):
        arguments = logger.init_args
        if (
            "save_dir" in arguments
            and "version" in arguments
            and isinstance(arguments.get("version"), (int, type(None)))
        ):
            return arguments
    return None
