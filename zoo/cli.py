"""``python -m zoo``: Lightning's own CLI, wired for the zoo.

Every LightningCLI subcommand and flag works (fit, validate, test, predict,
--print_config, --ckpt_path, --trainer.*, optimizer: and lr_scheduler: blocks).
What zoo adds: the data module tells the model its input shape, number of
outputs and task; a checkpoint callback keeps the best model by the task's
metric plus ``last.ckpt`` for resuming; and user mistakes end in one message.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI

import zoo.callbacks  # noqa: F401  (lets --trainer.callbacks name zoo's callbacks, e.g. TaskSeparation)
from zoo.data import ZooDataModule, get_dataset
from zoo.errors import ZooError
from zoo.models import ZooModule
from zoo.models.base import monitor_for


class ZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for attribute in ("input_shape", "num_outputs", "task"):
            parser.link_arguments(f"data.{attribute}", f"model.init_args.{attribute}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.filename": "best", "checkpoint.save_top_k": 1, "checkpoint.save_last": True})
        parser.link_arguments("data.dataset", "checkpoint.monitor", compute_fn=lambda name: monitor_for(get_dataset(name).task)[0])
        parser.link_arguments("data.dataset", "checkpoint.mode", compute_fn=lambda name: monitor_for(get_dataset(name).task)[1])

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """As LightningCLI's, but ``--trainer.enable_checkpointing false`` also drops zoo's checkpoint."""
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        keep = config.get("enable_checkpointing") is not False
        checkpoint = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys if keep]
        return self._instantiate_trainer(config, checkpoint)


def main(args: ArgsType = None) -> ZooCLI:
    """Entry point of ``python -m zoo`` and the ``zoo`` script; returns the CLI for scripting and tests."""
    # An ``optimizer:`` block in the config is meant to replace the model's default Adam.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden.*")
    try:
        # overwrite: a run folder reused on purpose (resuming, or no logger) keeps the latest config
        return ZooCLI(ZooModule, ZooDataModule, subclass_mode_model=True, save_config_kwargs={"overwrite": True}, args=args)
    except Exception as error:
        mistake = user_mistake(error)
        if mistake is None:
            raise
        print(f"zoo: error: {mistake}", file=sys.stderr)
        sys.exit(2)


def user_mistake(error: BaseException | None) -> ZooError | None:
    """The ``ZooError`` behind ``error``, if any: jsonargparse wraps errors raised while instantiating."""
    while error is not None:
        if isinstance(error, ZooError):
            return error
        error = error.__cause__ or error.__context__
    return None
