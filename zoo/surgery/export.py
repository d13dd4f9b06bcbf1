"""Write a model made by surgery as an ordinary zoo checkpoint and the config that builds it.

``OUT.ckpt`` holds what Lightning and ``zoo.load_model`` read (weights, hyper-parameters,
the architecture's name, the data it was trained on) plus ``surgery``: what was done, to
which checkpoints. ``OUT.yaml`` holds ``model:`` and ``data:``, and the source run's seed,
optimizer, schedule and epoch count, so that ``python -m zoo test --config OUT.yaml --ckpt_path
OUT.ckpt`` evaluates it and ``fit --config OUT.yaml --weights OUT.ckpt`` trains it further as the
source was trained. Both files are written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from zoo.checkpoints import read_checkpoint
from zoo.data import ZooDataModule
from zoo.errors import LINKED, ZooError
from zoo.io import write_bytes, write_text
from zoo.models import ZooModule
from zoo.runs import run_folder_of
from zoo.surgery.layout import init_arguments

RECIPE = ("seed_everything", "optimizer", "lr_scheduler")
"""What of a source run's config its surgery's config keeps (with ``trainer.max_epochs``): how it was trained."""


def export(
    model: ZooModule,
    path: str | Path,
    *,
    data: dict[str, Any],
    record: dict[str, Any],
    recipe: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``path`` (a checkpoint) and ``path`` with suffix ``.yaml`` (its config); returns both paths.

    ``recipe``: the config's training settings (:func:`training_recipe` of a source), so that a fit of it
    with ``--weights`` trains as the source was trained; without one, zoo's defaults train it.
    """
    path = Path(path)
    class_path = f"zoo.models.{type(model).__name__}"
    hyperparameters = plain(init_arguments(type(model), dict(model.hparams)))
    data = init_arguments(ZooDataModule, data)
    checkpoint = {
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "hyper_parameters": {"_class_path": class_path, **hyperparameters},  # as LightningCLI records them
        "datamodule_hyper_parameters": plain(data),
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
        "zoo": {"model": type(model).__name__, "training": {}},
        "surgery": plain(record),
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(path, buffer.getvalue())
    recipe = dict(recipe or {})
    config = {
        **({"seed_everything": recipe.pop("seed_everything")} if "seed_everything" in recipe else {}),
        "model": {
            "class_path": class_path,
            "init_args": {key: value for key, value in hyperparameters.items() if key not in LINKED},
        },
        "data": {key: value for key, value in plain(data).items() if value is not None},
        **plain(recipe),
    }
    header = f"# {record.get('operation', 'surgery')} of {', '.join(map(str, record.get('sources', [])))}\n"
    config_path = write_text(path.with_suffix(".yaml"), header + yaml.safe_dump(config, sort_keys=False))
    return path, config_path


def training_recipe(checkpoint: str | Path) -> dict[str, Any]:
    """The seed, optimizer, schedule and epoch count of the run a checkpoint was saved in (its ``config.yaml``);
    nothing for a checkpoint outside a run folder."""
    folder = run_folder_of(checkpoint)
    if folder is None:
        return {}
    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    recipe = {key: config[key] for key in RECIPE if config.get(key) is not None}
    epochs = (config.get("trainer") or {}).get("max_epochs")
    schedule = recipe.get("lr_scheduler") or {}
    arguments = schedule.get("init_args") or {}
    if schedule.get("class_path") == "zoo.optim.CosineAnnealingLR" and arguments.get("T_max") == epochs:
        del arguments["T_max"]  # set by the CLI to the run's epochs: it follows --trainer.max_epochs
    return recipe | ({"trainer": {"max_epochs": epochs}} if epochs is not None else {})


def trained_on(checkpoint: str | Path, data_dir: str | None = None) -> ZooDataModule:
    """The data module a checkpoint was trained with (its data in ``data_dir`` if given): what surgery judges on."""
    hparams = init_arguments(ZooDataModule, dict(read_checkpoint(checkpoint).get("datamodule_hyper_parameters") or {}))
    if not hparams:
        raise ZooError(f"{checkpoint}: records no data module, so surgery cannot tell which data to judge on")
    return ZooDataModule(**{**hparams, "data_dir": data_dir or hparams.get("data_dir")})


def plain(value: Any) -> Any:
    """Lists for tuples, all the way down: what YAML and ``torch.load(weights_only=True)`` read back alike."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
