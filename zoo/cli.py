"""``python -m zoo``: Lightning's own CLI, wired for the zoo.

Every LightningCLI subcommand and flag works (fit, validate, test, predict,
--print_config, --ckpt_path, --trainer.*, optimizer: and lr_scheduler: blocks).
What zoo adds: the data module tells the model its input shape, number of
outputs and task; a checkpoint callback keeps the best model by the task's
metric plus ``last.ckpt``, written atomically; ``--ckpt_path last`` resumes the
newest run in its own folder; each run folder is claimed atomically and records
its environment; and user mistakes end in one message and a non-zero exit.
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
from zoo.data import ZooDataModule, get_dataset
from zoo.errors import ZooError
from zoo.models import ZooModule, list_models
from zoo.models.base import monitor_for
from zoo.models.registry import check_checkpoint, read_checkpoint
from zoo.runs import latest_checkpoint, record_environment, reserve_version

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
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.filename": "best", "checkpoint.save_top_k": 1, "checkpoint.save_last": True})
        parser.link_arguments("data.dataset", "checkpoint.monitor", compute_fn=lambda name: monitor_for(get_dataset(name).task)[0])
        parser.link_arguments("data.dataset", "checkpoint.mode", compute_fn=lambda name: monitor_for(get_dataset(name).task)[1])

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """After parsing, before Lightning reads ``--ckpt_path``: resolve it, check it, claim the run folder.

        ``last`` means the newest run folder of this logger that holds ``last.ckpt``; the resumed
        run logs into that same folder. A checkpoint that is missing, unreadable, not zoo's or of
        another architecture is refused here, with one message. A new run claims its
        ``version_<N>`` atomically, so runs started together never share a folder.
        """
        super().parse_arguments(parser, args)
        config = self.config[self.config.subcommand]
        logger = _folder_logger_arguments(config.trainer)
        root = Path(logger.save_dir) / (logger.name or "") if logger is not None else None
        if config.ckpt_path == "last" and root is not None:
            found = latest_checkpoint(root)
            if found is None:
                raise ZooError(f"--ckpt_path last: no run under {root} has a checkpoints/last.ckpt yet; start without --ckpt_path")
            logger.version, config.ckpt_path = found[0], str(found[1])
        self.checkpoint_to_fit = None
        if config.ckpt_path and config.ckpt_path not in LIGHTNING_CHECKPOINT_KEYWORDS:
            self.checkpoint_to_fit = read_checkpoint(config.ckpt_path)  # kept: the shapes are checked once the model exists
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
            check_checkpoint(self.checkpoint_to_fit, self.model)
        if self.trainer.is_global_zero and self.trainer.loggers and self.trainer.log_dir:  # fast_dev_run logs nowhere
            record_environment(self.trainer.log_dir)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """As LightningCLI's, with two zoo defaults that a config can still override.

        ``--trainer.enable_checkpointing false`` also drops zoo's checkpoint, and the progress bar
        redraws every ``PROGRESS_BAR_REFRESH_STEPS`` steps unless the config brings its own bar.
        """
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        keep = config.get("enable_checkpointing") is not False
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys if keep]
        configured = config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in configured):
            extra.append(TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_STEPS))
        return self._instantiate_trainer(config, extra)


def main(args: ArgsType = None) -> ZooCLI:
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
            trainer_defaults={"plugins": {"class_path": "zoo.runs.AtomicCheckpointIO"}},
            parser_class=ZooArgumentParser,
            args=args,
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


def _folder_logger_arguments(trainer: Namespace) -> Namespace | None:
    """The init arguments of a single logger that writes ``<save_dir>/<name>/version_<N>`` folders."""
    logger = trainer.logger
    if isinstance(logger, Namespace) and isinstance(logger.get("init_args"), Namespace):
        arguments = logger.init_args
        if "save_dir" in arguments and "version" in arguments and isinstance(arguments.get("version"), (int, type(None))):
            return arguments
    return None
