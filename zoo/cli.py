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

import difflib
import importlib
import inspect
import json
import logging
import math
import re
import sys
import warnings
from argparse import RawDescriptionHelpFormatter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml
from jsonargparse import DefaultHelpFormatter, Namespace
from lightning_fabric.utilities.rank_zero import rank_zero_info, rank_zero_only
from pytorch_lightning import Callback, Trainer, callbacks
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary, ProgressBar, TQDMProgressBar
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI

import zoo.callbacks  # noqa: F401  (lets --trainer.callbacks name zoo's callbacks, e.g. TaskSeparation)
from zoo.checkpoints import check_checkpoint, read_checkpoint
from zoo.console import DashboardLayout, LayerSummary, PredictionWriter, RunSummary, StageRuns
from zoo.data import ZooDataModule, data_settings, get_dataset
from zoo.errors import LINKED, ZooError, exit_on_failure
from zoo.hooks import install as install_hook_dispatch
from zoo.models import ZooModule, list_models
from zoo.runs import (
    HParamsRecord,
    RunStarted,
    flat_hyperparameters,
    keep_csv_metrics,
    latest_checkpoint,
    lock_run_folder,
    record_environment,
    released_on_failure,
    reserve_version,
    resume_number,
    run_dir,
    run_folder_of,
    versions,
)
from zoo.task import metric_names, monitor_for

DEFAULTS = Path(__file__).with_name("defaults.yaml")
LOGS = "lightning_logs"  # the logger's save_dir in DEFAULTS; with --trainer.default_root_dir D: D/lightning_logs
LIGHTNING_CHECKPOINT_KEYWORDS = ("best", "last", "hpc", "registry")
# Lightning redraws its progress bar on every step; at ~100 MNIST steps/s that is 0.3 ms of
# a ~9 ms CPU step for a display tqdm refreshes 10 times a second anyway.
PROGRESS_BAR_REFRESH_STEPS = 20
COUNTS_DIVIDED_BY = ("accumulate_grad_batches", "check_val_every_n_epoch", "val_check_interval")  # must be > 0
SEED_RANGE = 2**32 - 1  # numpy's seeds, which Lightning's seed_everything sets too


def _classes(module: Any, base: type) -> list[str]:
    """The public subclasses of ``base`` a module exports, by the names a config gives them."""
    found = ((name, getattr(module, name, None)) for name in module.__all__)
    subclasses = [name for name, cls in found if isinstance(cls, type) and issubclass(cls, base) and cls is not base]
    return [name for name in subclasses if not name.startswith("Base")]  # Lightning's bases to build on


CLASS_OPTIONS = {  # what a class-valued option takes by name (any class's import path works too)
    "model": list_models,
    "optimizer": lambda: _classes(torch.optim, torch.optim.Optimizer),
    "lr_scheduler": lambda: _classes(torch.optim.lr_scheduler, torch.optim.lr_scheduler.LRScheduler),
    "trainer.callbacks": lambda: [*zoo.callbacks.__all__, *_classes(callbacks, Callback)],
}
UNKNOWN_OPTION = re.compile(r"^Option '([^']+)' is not accepted")
REQUIRED = re.compile(r"^the following arguments are required: (.*)$")
NO_MODULE = re.compile(r"^No module named '([\w.]+)'")
CLASS_BLOCK = re.compile(r"class_path '([\w.]+)':\n(.*?)(?=\n    - |\n  Given|\Z)", re.S)
BASES = {"pytorch_lightning.Callback", "lightning.pytorch.Callback"}  # a list's items tried as the base class too
UNKNOWN_CLASS = re.compile(r"Expected a dot import path string: (\S+)")
SIMPLE = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text", "NoneType": "null"}
SIMPLE |= {"Sequence": "a list", "list": "a list", "dict": "a mapping", "Tensor": "a tensor"}
OPTION_SAID = re.compile(r"(?:Parser key \"([^\"]+)\":|([\w.]+):) (.*)")  # jsonargparse's, or zoo's own line
CHOICE = re.compile(r"Expected a typing\.Literal\[(.*?)\]\. Got value: (.*)")


def distilled(message: str) -> str | None:
    """jsonargparse's account of a bad class, class option or value (a dozen lines of union subtypes) in one
    line: the option, the value, what is accepted and the nearest name; ``None`` for any other message."""
    if re.search(r'(--> |Linked ")checkpoint\.(monitor|mode)', message):  # linked from the data: not the user's
        return (
            "checkpoint.monitor and checkpoint.mode follow the task (val/acc, max for classification; val/loss, "
            "min for regression) and pick best.ckpt; to keep checkpoints by another metric, add one: "
            "--trainer.callbacks+=ModelCheckpoint --trainer.callbacks.monitor val/loss --trainer.callbacks.mode min"
        )
    key = re.match(r'Parser key "([^"]+)"', message)
    if key is None:
        return None
    key = key.group(1)
    for path, block in CLASS_BLOCK.findall(message):  # what each class tried said, the base classes' aside
        if path in BASES:
            continue
        name, block = path.rsplit(".", 1)[-1], " ".join(block.split())
        if found := REQUIRED.search(block):
            needed = [option.strip() for option in found.group(1).split(",")]
            give = " ".join(f"--{key}.{option} VALUE" for option in needed)
            return f"{key}: {name} needs {', '.join(needed)}, which has no default; give it after the class: {give}"
        if found := NO_MODULE.search(block):
            hint = ""
            if path.startswith("lightning.pytorch."):  # Lightning's docs spell it so; zoo runs on pytorch_lightning
                hint = f" (zoo runs on the pytorch_lightning package: pytorch_lightning.{path.split('.', 2)[-1]})"
            return f"{key}: class {path!r}: no module named {found.group(1)!r}{hint}"
        if found := UNKNOWN_OPTION.search(block):
            option = found.group(1)
            accepted = _init_arguments(path, skip=LINKED if key == "model" else ())
            listed = ", ".join(accepted)
            return f"{key}: {name} has no option {option!r}{_nearest(option, accepted)}; accepted: {listed}"
        said = OPTION_SAID.match(block)  # one of the class's own options has a bad value
        wrong = (_value_said(said.group(3)) or (said.group(3) if said.group(2) else None)) if said else None
        if wrong:
            return f"{key}.{said.group(1) or said.group(2)} ({name}): {wrong}"
    if (found := UNKNOWN_CLASS.search(message)) and key in CLASS_OPTIONS and "class_path '" not in message:
        name, accepted = found.group(1), CLASS_OPTIONS[key]()
        return (
            f"{key}: no class {name!r}{_nearest(name, accepted)}; accepted: {', '.join(accepted)}, "
            "or a class's import path (package.module.Class)"
        )
    wrong = _value_said(message[len(key) + 14 :])
    return f"{key}: {wrong}" if wrong else None


def _value_said(text: str) -> str | None:
    """What is wrong with a value, in words: ``'c' is not accepted; accepted: a, b`` (jsonargparse's
    ``Expected a typing.Literal['a', 'b']. Got value: c``), or ``'many' is not a whole number or null``."""
    text = " ".join(text.split())
    if found := CHOICE.search(text):
        accepted = [choice.strip().strip("'\"") for choice in found.group(1).split(",")]
        value = found.group(2).strip()
        return f"{value!r} is not accepted{_nearest(value, accepted)}; accepted: {', '.join(accepted)}"
    if found := re.fullmatch(r"Expected a <class '([\w.]+)'>\. Got value: (.*)", text):
        return f"{found.group(2)!r} is not {_kind(found.group(1))}"
    types, given = re.search(r"Subtypes: \[(.*?)\] Errors:", text), re.search(r"Given value: (.*)$", text)
    if types and given and re.fullmatch(r"(<class '[\w.]+'>(, )?)+", types.group(1)):
        kinds = re.findall(r"<class '([\w.]+)'>", types.group(1))
        return f"{given.group(1)!r} is not {' or '.join(_kind(kind) for kind in kinds)}"
    return None


def _kind(path: str) -> str:
    name = path.rsplit(".", 1)[-1]
    return SIMPLE.get(name, f"a {name}")


def _init_arguments(path: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """The options a class takes in a config: its ``__init__``'s named parameters, less what is given for it."""
    module, _, name = path.rpartition(".")
    parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters.values()
    given = {"params", "optimizer", *skip}  # the optimizer's parameters and the scheduler's optimizer: Lightning's
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in named and p.name not in given]


def _nearest(name: str, accepted: list[str]) -> str:
    close = difflib.get_close_matches(name, accepted, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ZooArgumentParser(LightningArgumentParser):
    """jsonargparse's parser, whose errors come as one message first, without the usage dump.

    An unknown class or class option is said in one line, with what is accepted (:func:`distilled`).
    """

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        message = distilled(message) or message
        if not self.exit_on_error:
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        where = f"`{prog} --help` lists every option"
        if getattr(parser, "_subcommands_action", None) is not None:  # the top parser's help lists the subcommands
            where = f"`{prog} fit --help` lists every option; validate, test and predict have their own"
        sys.stderr.write(f"zoo: error: {message}\n({where})\n")
        self.exit(2)


class ZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for attribute in LINKED:
            parser.link_arguments(f"data.{attribute}", f"model.init_args.{attribute}", apply_on="instantiate")
        # not a forced callback (add_lightning_class_args): instantiate_trainer adds it unless checkpointing is off
        parser.add_class_arguments(ModelCheckpoint, "checkpoint", fail_untyped=False, sub_configs=True)
        parser.set_defaults({"checkpoint.filename": "best", "checkpoint.save_top_k": 1, "checkpoint.save_last": True})
        parser.link_arguments("data.dataset", "checkpoint.monitor", compute_fn=_monitored_metric)
        parser.link_arguments("data.dataset", "checkpoint.mode", compute_fn=_monitored_mode)
        parser.add_argument(
            "--population",
            type=int | None,
            default=None,
            help="train this many seeds of the model at once, as one batched model (zoo.models.Population)",
        )
        parser.add_argument(
            "--allow_other_dataset",
            type=bool,
            default=False,
            help="use a checkpoint on other data than it was trained on (another dataset, split, scaling), on purpose",
        )
        parser.add_argument(
            "--weights",
            type=str | None,
            default=None,
            help="fit: a new run starting from this checkpoint's weights, with a fresh optimizer, schedule and "
            "epoch count (--ckpt_path resumes a run instead)",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """After parsing, before Lightning reads ``--ckpt_path``: complete the config and claim the run's folder.

        ``last`` (``best``) means the newest run folder of this logger that holds ``last.ckpt``
        (``best.ckpt``). A fit resumed from ``last`` logs into that same folder and appends its
        own record (``config.resume-<K>.yaml``, ``environment.resume-<K>.json``); validate, test
        and predict of a checkpoint write into ``<run>/<subcommand>/version_<N>`` next to it. A
        run folder's record is never rewritten. A new run claims its ``version_<N>``
        atomically, so runs started together never share a folder, and every run locks its
        folder before writing in it (a second resume of a running run is refused). A checkpoint that is
        missing, unreadable, not zoo's or of another architecture is refused here.
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand") or "fit"  # run=False: the caller fits (sweeps do)
        config = self.run_config
        if config.population is not None:
            _wrap_in_population(config)
        _complete(config)
        logger = _folder_logger_arguments(config.trainer)
        root = Path(logger.save_dir) / (logger.name or "") if logger is not None else None
        checkpoint = config.get("ckpt_path")  # absent with run=False: the caller loads what it wants
        if checkpoint in ("last", "best"):
            checkpoint = config.ckpt_path = _resolve_keyword(checkpoint, subcommand, root, logger)
        self.weights_only = config.get("weights") is not None
        if self.weights_only:
            if subcommand != "fit":
                raise ZooError(f"--weights starts a fit from a checkpoint's weights; {subcommand} takes --ckpt_path")
            if checkpoint:
                raise ZooError("give --weights (a new run from a checkpoint's weights) or --ckpt_path (resume one)")
            if config.weights in LIGHTNING_CHECKPOINT_KEYWORDS:
                raise ZooError(
                    f"--weights takes a checkpoint file's path, got {config.weights!r} (a keyword only --ckpt_path "
                    "takes); e.g. --weights lightning_logs/fc/version_0/checkpoints/best.ckpt"
                )
            checkpoint = config.weights  # checked as a resumed one is, then only its weights are loaded
        self.checkpoint_to_fit = None
        self.checkpoint_path = checkpoint
        self.environment_file = "environment.json"
        if checkpoint and checkpoint not in LIGHTNING_CHECKPOINT_KEYWORDS:
            if not self.weights_only and not Path(checkpoint).exists():  # "newest", say: the words it takes too
                raise ZooError(
                    f"checkpoint not found: {checkpoint}; --ckpt_path takes a checkpoint file's path, or best or "
                    "last (the newest run's)"
                )
            self.checkpoint_to_fit = read_checkpoint(checkpoint)  # the shapes are checked once the model exists
            held = self.checkpoint_to_fit["zoo"]["model"]
            built = config.model.class_path.rsplit(".", 1)[-1] if isinstance(config.model, Namespace) else held
            if held != built:
                hint = ""
                if held == "Population":  # the population's own flag rebuilds it from its member's config
                    size = self.checkpoint_to_fit.get("hyper_parameters", {}).get("size")
                    hint = f"; add --population {size}" if size else "; add --population N"
                raise ZooError(f"{checkpoint}: holds a {held}, but this configuration builds a {built}{hint}")
            _check_members(checkpoint, self.checkpoint_to_fit, config)
            if not self.weights_only:
                _say_model_from_checkpoint(checkpoint, self.checkpoint_to_fit, config)
            origin = run_folder_of(checkpoint)
            if subcommand != "fit" and logger is not None and origin is not None:
                logger.save_dir, logger.name, logger.version = str(origin), subcommand, None
                root = origin / subcommand
        self.run_lock = None
        # Lightning's check run writes nothing, and a DDP run's other ranks (which rerun this command) write
        # through rank 0: neither takes the folder's lock
        writes = not config.trainer.get("fast_dev_run") and rank_zero_only.rank == 0
        if config.trainer.get("logger") in (False, None) and writes:
            _refuse_writing_over(Path(config.trainer.get("default_root_dir") or "."))
        if logger is None or config.trainer.get("fast_dev_run"):  # a check that writes nothing claims no folder
            self.save_config_kwargs = {**self.save_config_kwargs, "overwrite": True}  # no run folder to keep
        elif logger.version is None:
            if writes:  # another rank leaves the version to Lightning, which creates no folder there
                logger.version = reserve_version(root)
                self.run_lock = lock_run_folder(root / f"version_{logger.version}")
        else:  # resuming in the run's own folder, its one writer: its record stays, the resume adds its own
            self.run_lock = lock_run_folder(root / f"version_{logger.version}") if writes else None
            resume = resume_number(root / f"version_{logger.version}") + 1
            self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": f"config.resume-{resume}.yaml"}
            self.environment_file = f"environment.resume-{resume}.json"
            folder = re.escape(str(root / f"version_{logger.version}" / "checkpoints"))
            # its own checkpoints, which it goes on keeping: Lightning's warning reads like a fault here
            warnings.filterwarnings("ignore", message=f"Checkpoint directory {folder} exists and is not empty")
        for other in _folder_loggers(config.trainer)[1:]:  # a second logger writes into the run's folder too
            other.save_dir, other.name, other.version = logger.save_dir, logger.name, logger.version

    @property
    def run_config(self) -> Namespace:
        """This run's part of the parsed config (the subcommand's, or all of it with ``run=False``)."""
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        """Lightning's parsers, with one whole sentence per subcommand in ``--help`` (its own are cut short)."""
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        if add_subcommands:  # argparse keeps the listed help of each subcommand in its choices actions
            for action in self.parser._subcommands_action._choices_actions:
                action.help = SUBCOMMANDS.get(action.dest, action.help)

    def before_fit(self) -> None:
        if self.checkpoint_to_fit is not None and not self.weights_only:
            _check_resume(self.checkpoint_to_fit, self.checkpoint_path, self.run_config)
        self._prepare_run()
        if self.weights_only:
            self.model.load_state_dict(self.checkpoint_to_fit["state_dict"])
            rank_zero_info(f"Weights from {self.checkpoint_path}; a new run: its own optimizer, schedule and epochs")

    def before_validate(self) -> None:
        self._prepare_run()

    def before_test(self) -> None:
        self._prepare_run()

    def before_predict(self) -> None:
        self._prepare_run()

    def _prepare_run(self) -> None:
        """Refuse a checkpoint that does not fit the model or the data, and record what produced the run.

        (Lightning builds the model from the checkpoint's hyper-parameters, but the shapes linked
        from the data module can still differ: an iris checkpoint on MNIST, say; and a model of
        the right shape trained on other data would be evaluated without a word.)
        """
        config = self.run_config
        if self.checkpoint_to_fit is not None:
            check_checkpoint(self.checkpoint_to_fit, self.checkpoint_path, self.model)
            trained_on = self.checkpoint_to_fit.get("datamodule_hyper_parameters")
            if trained_on and not config.allow_other_dataset:
                _check_same_data(trained_on, self.datamodule, self.checkpoint_path)
        if self.trainer.is_global_zero and self.trainer.loggers and run_dir(self.trainer):  # fast_dev_run: nowhere
            record_environment(run_dir(self.trainer), self.environment_file, subcommand=self.subcommand)
            keep_csv_metrics(self.trainer)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """As LightningCLI's, with zoo's checkpoint and progress bar among the callbacks, and zoo's hook dispatch.

        ``--trainer.enable_checkpointing false`` and ``fast_dev_run`` (which Lightning says saves
        nothing, yet its ``save_last`` writes ``last.ckpt`` at the end) drop zoo's checkpoint, and the
        progress bar redraws every ``PROGRESS_BAR_REFRESH_STEPS`` steps unless the config brings its own.
        """
        install_hook_dispatch()  # a step's hooks that do nothing are passed over (zoo.hooks)
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = {**config["trainer"], **kwargs}
        configured = trainer.get("callbacks") or []
        callbacks = list(configured) if isinstance(configured, list) else [configured]
        if trainer.get("enable_checkpointing") is not False and not trainer.get("fast_dev_run"):
            callbacks += checkpoints(config["checkpoint"])
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            # first, so that its epoch-end hooks run before the analyses: their time stays out of its it/s
            callbacks.insert(0, TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_STEPS))
        if trainer.get("enable_model_summary") is not False and not any(isinstance(c, ModelSummary) for c in callbacks):
            callbacks.append(LayerSummary())
        task = get_dataset(config["data"].hparams.dataset).task
        monitor = monitor_for(task)
        hparams = flat_hyperparameters(self.run_config)
        built = self.model.hparams  # linked from the data when the model was built: the config holds their defaults
        hparams.update(flat_hyperparameters({"model": {key: built[key] for key in LINKED if key in built}}))
        if self.run_config.get("weights"):
            hparams["weights"] = self.run_config.weights  # a new run's record says where its weights came from
        callbacks += [
            RunStarted(),
            HParamsRecord(hparams, monitor.of("val"), metric_names(task)),
            RunSummary(monitor.of("val"), monitor.mode),
            PredictionWriter(),
            DashboardLayout(metric_names(task)),
            StageRuns(metric_names(task)),
        ]
        return super().instantiate_trainer(**{**kwargs, "callbacks": callbacks})


def checkpoints(best: ModelCheckpoint) -> list[ModelCheckpoint]:
    """The configured checkpoint (best by the task's metric) and, if it asks for ``last``, a second one.

    Lightning 2.6 rewrites ``last.ckpt`` only in epochs that also save a new best, so after an
    epoch without improvement ``last.ckpt`` would lag behind and a resume would repeat epochs.
    The second checkpoint, with no metric, writes ``last.ckpt`` after every epoch.
    """
    if not best.save_last:
        return [best]
    last = ModelCheckpoint(dirpath=best.dirpath, filename="last", save_top_k=1, enable_version_counter=False)
    best.save_last = False
    return [best, last]


SUBCOMMANDS = {
    "fit": "Train a model, validating it after every epoch; resume one with --ckpt_path last.",
    "validate": "Evaluate a model or a checkpoint on the validation split.",
    "test": "Evaluate a model or a checkpoint on the test split (--ckpt_path best: the newest run's best).",
    "predict": "Predict the test split with a model or a checkpoint; writes predictions.csv and .pt to its folder.",
}


def _description() -> str:
    from zoo.data import DATASETS

    return (
        "zoo: train and compare small architectures on MNIST-like data from one YAML file, watch them in\n"
        "TensorBoard, and look inside them (task separation, activations). Lightning's CLI: every subcommand\n"
        "and flag of a Lightning Trainer works.\n\n"
        f"models:    {', '.join(list_models())}  (--population N: N seeds of one, as one batched model)\n"
        f"datasets:  {', '.join(DATASETS)}\n\n"
        "examples:\n"
        "  python -m zoo fit --config configs/fc.yaml\n"
        "  python -m zoo fit --model FCNet --model.hidden '[256, 128]' --data.dataset fashion_mnist\n"
        "  python -m zoo test --config configs/fc.yaml --ckpt_path best\n"
        "  python -m zoo fit --config configs/multimult.yaml --population 100"
    )


class ZooHelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, keeping the line breaks of zoo's description."""


def _parser_defaults(run: bool) -> dict[str, Any]:
    """zoo's defaults file for the parser of each subcommand (or for the one parser without them)."""
    defaults = {"default_config_files": [str(DEFAULTS)]}
    name = "python -m zoo" if sys.argv[0].endswith("__main__.py") else "zoo"
    main = {"prog": name, "description": _description(), "formatter_class": ZooHelpFormatter}
    if not run:
        return {**defaults, **main}
    return {**main, **{command: {**defaults, "description": text} for command, text in SUBCOMMANDS.items()}}


def main(args: ArgsType = None, run: bool = True) -> ZooCLI:
    """Entry point of ``python -m zoo`` and the ``zoo`` script; returns the CLI for scripting and tests.

    Failures end through ``zoo.errors.exit_on_failure``: one line and an exit code for a
    mistake or a fault, a traceback only for a bug in zoo. A run folder claimed by a
    command that fails before anything ran in it is removed again.
    """
    quiet_lightning()

    def build() -> ZooCLI:
        check_config_files(sys.argv[1:] if args is None else args)
        return ZooCLI(
            ZooModule,
            ZooDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": False},  # a run folder's record is never rewritten
            parser_kwargs=_parser_defaults(run),
            parser_class=ZooArgumentParser,
            args=args,
            run=run,
        )

    try:
        with released_on_failure(keep_locks=not run):  # run=False: the caller fits; the CLI holds the lock
            return exit_on_failure(build, say_stops=run)  # run=False: the caller says how to go on after a stop
    finally:
        if run:
            _leave_process_group()


def _leave_process_group() -> None:
    """End a distributed run's process group (Lightning leaves it): left to the interpreter's exit, its
    threads were destroyed while joinable, and a finished run aborted ('terminate called ...', exit 134)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class _DropTips(logging.Filter):
    NOISE = ("💡 Tip", "Trainer already configured with model summary callbacks")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


def quiet_lightning(level: int | None = None) -> None:
    """Silence, at their source, the messages that tell a zoo user nothing; ``level`` WARNING mutes the rest.

    Dropped: Lightning's advertisement for its cloud logger, torch's deprecation of the
    ``LeafSpec`` Lightning still uses, the override notice for an ``optimizer:`` block (replacing
    the model's default Adam is what the block is for), the worker-count advice for
    DataLoaders (zoo's batches are tensor slices), and the "dirpath has changed" note.
    Warnings that matter (a metric missing, a deprecated flag of the user's) stay.
    """
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric") if level is not None else ():
        logging.getLogger(name).setLevel(level)
    for message in (
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
        r".*configure_optimizers` will be overridden.*",
        r".*does not have many workers.*",
        r".*The dirpath has changed.*",
        r".*LightningCLI's args parameter is intended.*",
        r".*Couldn't infer the batch indices fetched from your dataloader.*",  # predict's writer needs none
    ):
        warnings.filterwarnings("ignore", message=message)


def check_config_files(args: list[str] | Any) -> None:
    """Every ``--config`` file is readable YAML holding a mapping; else one message naming the file and line."""
    if not isinstance(args, list):
        return
    paths = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    paths += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for path in map(Path, paths):
        if not path.is_file():
            continue  # jsonargparse says it is missing, or it is a YAML string given on the command line
        try:
            content = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ZooError(f"{path}{where}: not valid YAML: {problem}") from None
        if content is None:
            raise ZooError(f"{path} is empty; a config holds keys such as model:, data: or trainer:")
        if not isinstance(content, dict):
            raise ZooError(f"{path} holds a {type(content).__name__}, not the mapping of model:, data:, trainer: ...")


def _refuse_writing_over(folder: Path) -> None:
    """Without a logger a run has no folder of its own: it writes config.yaml, checkpoints/ and predictions
    into ``folder`` (Lightning's ``default_root_dir``), where an earlier run's would be overwritten unseen."""
    if (folder / "config.yaml").is_file():
        raise ZooError(
            f"trainer.logger is off, so this run would write into {folder} (trainer.default_root_dir), over the "
            f"config.yaml and checkpoints of an earlier run there; give another --trainer.default_root_dir, or "
            "leave the logger on for a run folder of its own"
        )


def _resolve_keyword(keyword: str, subcommand: str, root: Path | None, logger: Namespace | None) -> str:
    """``--ckpt_path last`` or ``best``: the newest run of this logger that has one; resuming fits log there."""
    if subcommand == "fit" and keyword == "best":
        raise ZooError("fit --ckpt_path best: a fit resumes from last (where it stopped); use --ckpt_path last")
    if root is None:
        raise ZooError(
            f"--ckpt_path {keyword} means the newest run of the logger, and this configuration logs nowhere "
            "(trainer.logger is off); give the checkpoint's path instead"
        )
    found = latest_checkpoint(root, f"{keyword}.ckpt")
    if found is None:
        raise ZooError(f"--ckpt_path {keyword}: no run under {root} has a checkpoints/{keyword}.ckpt yet")
    newer = [_described(root / f"version_{version}") for version in versions(root) if version > found[0]]
    if newer:  # a run stopped before its first checkpoint, one that named its checkpoints otherwise, or a test
        rank_zero_info(
            f"--ckpt_path {keyword}: {found[1]}, the newest run with a {keyword}.ckpt; the newer "
            f"{', '.join(newer)} under {root} hold(s) none (give a path to use another checkpoint)"
        )
    if subcommand == "fit":
        logger.version = found[0]
    return str(found[1])


def _described(folder: Path) -> str:
    """A run folder's name, and what ran there if it was no fit (testing a checkpoint from outside a run)."""
    try:
        ran = json.loads((folder / "environment.json").read_text()).get("subcommand")
    except (OSError, ValueError, AttributeError):
        return folder.name
    return f"{folder.name} (a {ran} run)" if ran in SUBCOMMANDS and ran != "fit" else folder.name


def _check_same_data(trained_on: Mapping[str, Any], data: ZooDataModule, path: str) -> None:
    """Refuse to evaluate or resume a checkpoint on other data than its own, which would go unannounced: another
    dataset, or the same one split, scaled or sampled otherwise (a multimult test split of other samples)."""
    saved, asked = data_settings(trained_on)["dataset"], data.hparams.dataset
    if saved != asked:
        raise ZooError(
            f"{path}: was trained on {saved}, and this configuration's data is {asked}; "
            f"use --data.dataset {saved}, or --allow_other_dataset true to use it on {asked} on purpose"
        )
    changed = data.differences(trained_on)
    if changed:  # said as written (null: the default), which is also what restores them
        said = ", ".join(
            f"data.{key} {_flag_value(trained_on.get(key))} (this configuration: {_flag_value(data.hparams[key])})"
            for key in changed
        )
        flags = " ".join(f"--data.{key} {_flag_value(trained_on.get(key))}" for key in changed)
        raise ZooError(
            f"{path}: was trained on {saved} with {said}: other samples or scaling than this "
            f"configuration's; use {flags}, or --allow_other_dataset true to use it on this data on purpose"
        )


def _flag_value(value: Any) -> str:
    """A setting as one would type it after its flag."""
    if isinstance(value, list):
        return "[" + ",".join(str(item) for item in value) + "]"
    return "null" if value is None else str(value)


def _check_resume(checkpoint: dict, path: str, config: Namespace) -> None:
    """A resumed fit must build the optimizer and schedule it saved (their state cannot go elsewhere), and have
    epochs left to train (a resume that trains nothing wrote its records and said "Done")."""
    saved = checkpoint["zoo"].get("training", {})
    built = {
        "optimizer": _class_name(config.get("optimizer")) or "Adam",
        "lr_scheduler": _class_name(config.get("lr_scheduler")) or "none",
    }
    for part, name in built.items():
        if part in saved and saved[part] != name:
            raise ZooError(
                f"{path}: was trained with {part} {saved[part]}, and this configuration builds "
                f"{name}; resume with the same {part}, or start a new run from these weights: --weights {path} "
                "instead of --ckpt_path"
            )
    changed = _changed_optimizer_settings(checkpoint, config.get("optimizer"))
    if changed:
        said = ", ".join(f"{key} {saved} (asked: {asked})" for key, saved, asked in changed)
        raise ZooError(
            f"{path}: its optimizer was built with {said}, and a resume restores the optimizer as saved; leave "
            f"them as they were, or start a new run from these weights with yours: --weights {path} instead of "
            "--ckpt_path"
        )
    trained = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    trained, epochs = trained.get("processed"), config.trainer.get("max_epochs")
    if isinstance(trained, int) and isinstance(epochs, int) and 0 <= epochs <= trained:
        raise ZooError(
            f"{path}: has trained {trained} epochs, and --trainer.max_epochs {epochs} leaves none to train; "
            "raise trainer.max_epochs to resume"
        )


def _changed_optimizer_settings(checkpoint: dict, optimizer: Any) -> list[tuple[str, Any, Any]]:
    """The optimizer settings a resume asks for that differ from those saved (torch restores the saved ones,
    while the resume's config would record the new): ``(key, saved, asked)``. The rate compares with the
    schedule's starting rate (``initial_lr``), not the scheduled one; under a schedule that keeps none
    (ReduceLROnPlateau lowers the rate itself), the rate is not compared."""
    groups = (checkpoint.get("optimizer_states") or [{}])[0].get("param_groups") or [{}]
    if not isinstance(optimizer, Namespace) or not isinstance(optimizer.get("init_args"), Namespace):
        return []
    scheduled = bool(checkpoint.get("lr_schedulers"))
    changed = []
    for key, asked in optimizer.init_args.items():
        if key == "lr" and scheduled and "initial_lr" not in groups[0]:
            continue
        saved = groups[0].get("initial_lr" if key == "lr" else key, groups[0].get(key))
        if saved is not None and asked is not None and not _same_setting(saved, asked):
            changed.append((key, saved, asked))
    return changed


def _same_setting(saved: Any, asked: Any) -> bool:
    if isinstance(saved, bool) or isinstance(asked, bool):
        return saved == asked
    if isinstance(saved, int | float) and isinstance(asked, int | float):
        return math.isclose(saved, asked, rel_tol=1e-9)
    if isinstance(saved, tuple | list) and isinstance(asked, tuple | list):
        return len(saved) == len(asked) and all(_same_setting(a, b) for a, b in zip(saved, asked))
    return isinstance(saved, torch.Tensor) or saved == asked  # a tensor rate: not a config's value to compare


def _class_name(group: Any) -> str | None:
    return group.class_path.rsplit(".", 1)[-1] if isinstance(group, Namespace) else None


def _model_class(group: Namespace) -> type[ZooModule]:
    """The class a parsed ``model:`` block names (the parser has checked that it is a ZooModule)."""
    module, _, name = group.class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _complete(config: Namespace) -> None:
    """Fill in what the defaults leave to the run (the logger's name, the schedule's horizon); check the rate."""
    epochs = config.trainer.max_epochs
    if epochs is not None and epochs < -1:
        raise ZooError(f"trainer.max_epochs must be -1 (no limit) or a number of epochs ≥ 0, got {epochs}")
    for key in COUNTS_DIVIDED_BY:  # Lightning takes 0 and divides by it mid-epoch (a ZeroDivisionError)
        count = config.trainer.get(key)
        if isinstance(count, int | float) and not count > 0:
            raise ZooError(f"trainer.{key} must be positive, got {count}")
    seed = config.get("seed_everything")
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= SEED_RANGE:
        raise ZooError(f"seed_everything must lie in [0, {SEED_RANGE}] (numpy's seeds) or be true (random), got {seed}")
    optimizer = config.get("optimizer")
    if isinstance(optimizer, Namespace) and "lr" in optimizer.get("init_args", {}):
        lr = optimizer.init_args.lr
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ZooError(f"optimizer.init_args.lr must be a positive number, got {lr}")
    logger = config.trainer.logger
    root = config.trainer.get("default_root_dir")
    for arguments in _folder_loggers(config.trainer) if root is not None else ():
        if arguments.save_dir == LOGS:
            arguments.save_dir = str(Path(root) / LOGS)  # as Lightning's own logger does: <root>/lightning_logs
    for each in logger if isinstance(logger, list) else [logger]:
        if isinstance(each, Namespace) and "name" in each.get("init_args", {}) and each.init_args.name is None:
            files = [path for path in config.get("config") or [] if path is not None]
            model = config.model.class_path.rsplit(".", 1)[-1] if isinstance(config.model, Namespace) else "run"
            each.init_args.name = Path(str(files[-1])).stem if files else model.lower()
    schedule = config.get("lr_scheduler")
    if isinstance(schedule, Namespace) and schedule.class_path == "zoo.optim.CosineAnnealingLR":
        if schedule.init_args.get("T_max") is None:
            if epochs is None or epochs < 1:
                raise ZooError(
                    f"the cosine schedule decays over trainer.max_epochs, which is {epochs}; "
                    "set a positive --trainer.max_epochs or --lr_scheduler.init_args.T_max"
                )
            schedule.init_args.T_max = epochs


def _wrap_in_population(config: Namespace) -> None:
    """``--population N``: the configured model becomes the member of a Population of N seeds."""
    model = config.model
    name = _class_name(model)
    if config.population < 1:
        raise ZooError(f"--population must be at least 1, got {config.population}")
    if _model_class(model).kind == "population":
        if model.init_args.get("size") == config.population:  # a population run's own config.yaml says both
            return
        raise ZooError(
            f"--population {config.population} wraps one architecture, and this configuration's model is a "
            f"Population of {model.init_args.get('size')} already"
        )
    arguments = {key: value for key, value in model.init_args.as_dict().items() if key not in LINKED}
    seed = config.seed_everything
    first_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    init_args = {"architecture": name, "size": config.population, "member": arguments, "first_seed": first_seed}
    linked = dict.fromkeys(LINKED)  # the data module's links fill them, as for any model (a link sets existing keys)
    config.model = Namespace(class_path="zoo.models.Population", init_args=Namespace(**init_args, **linked))


def _check_members(path: str, checkpoint: dict, config: Namespace) -> None:
    """A population's checkpoint is read with as many members as it holds, never as many as another flag says."""
    held = checkpoint.get("hyper_parameters", {}).get("size")
    model = config.model
    asked = model.init_args.get("size") if isinstance(model, Namespace) and "init_args" in model else None
    if checkpoint["zoo"]["model"] == "Population" and held is not None and asked is not None and held != asked:
        raise ZooError(f"{path}: holds a Population of {held} members, not {asked}; give --population {held}")


def _say_model_from_checkpoint(path: str, checkpoint: dict, config: Namespace) -> None:
    """Lightning builds a ``--ckpt_path`` model with the checkpoint's settings, whatever the configuration says:
    where the two differ, say which are used (the run's ``config.yaml`` records the checkpoint's)."""
    model = config.model
    asked = model.init_args if isinstance(model, Namespace) and isinstance(model.get("init_args"), Namespace) else None
    if asked is None:
        return
    saved = {key: value for key, value in (checkpoint.get("hyper_parameters") or {}).items() if key not in LINKED}
    differing = _differing_settings(saved, asked.as_dict())
    if differing:
        said = ", ".join(f"{key} {was} (this configuration: {value})" for key, was, value in differing)
        rank_zero_info(f"{path}: its model is built as it was saved, with {said}")


def _differing_settings(saved: dict, asked: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(key, saved, asked)`` for the settings in both that differ; a population's member settings by name."""
    differing = []
    for key, value in asked.items():
        if key not in saved:
            continue
        if isinstance(value, dict) and isinstance(saved[key], dict):
            differing += _differing_settings(saved[key], value, f"{prefix}{key}.")
        elif not _same_setting(saved[key], value):
            differing.append((f"{prefix}{key}", saved[key], value))
    return differing


def _monitored_metric(dataset: str) -> str:
    return monitor_for(get_dataset(dataset).task).of("val")


def _monitored_mode(dataset: str) -> str:
    return monitor_for(get_dataset(dataset).task).mode


def _folder_loggers(trainer: Namespace) -> list[Namespace]:
    """The init arguments of every logger that writes ``<save_dir>/<name>/version_<N>`` folders, in order."""
    loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
    return [
        logger.init_args
        for logger in loggers
        if isinstance(logger, Namespace)
        and isinstance(logger.get("init_args"), Namespace)
        and "save_dir" in logger.init_args
        and "version" in logger.init_args
        and isinstance(logger.init_args.get("version"), (int, type(None)))
    ]


def _folder_logger_arguments(trainer: Namespace) -> Namespace | None:
    """The first folder logger's init arguments: its folder is the run's (the others share it)."""
    loggers = _folder_loggers(trainer)
    return loggers[0] if loggers else None


class _ParseOnly(ZooCLI):
    """The CLI up to its parser: arguments checked, nothing built, no run folder claimed."""

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        LightningCLI.parse_arguments(self, parser, args)

    def instantiate_classes(self) -> None:
        pass


_checking_parser: list[LightningArgumentParser] = []


def check_arguments(args: list[str], what: str) -> None:
    """Check ``args`` with the CLI's own parser and build nothing; a ``ZooError`` names ``what`` and the first problem.

    Sweeps check every trial this way before any runs: a misspelt key or a value of the wrong
    type is found in seconds, not when its trial's turn comes.
    """
    check_config_files(args)
    quiet_lightning(logging.WARNING)
    try:
        if not _checking_parser:  # building the parser takes a second; each check after that, a tenth
            cli = _ParseOnly(
                ZooModule,
                ZooDataModule,
                subclass_mode_model=True,
                parser_kwargs={**_parser_defaults(False), "exit_on_error": False},
                parser_class=ZooArgumentParser,
                args=args,
                run=False,
            )
            _checking_parser.append(cli.parser)
        config = _checking_parser[0].parse_args(args)
    except Exception as error:  # jsonargparse's ArgumentError, with the nested reasons on further lines
        lines = [line.strip(" -") for line in str(error).splitlines() if line.strip(" -")]
        reasons = [line for line in lines if "not accepted" in line or line.startswith(("Expected", "Key "))]
        reason = reasons[0] if reasons else lines[0] if lines else type(error).__name__
        raise ZooError(f"{what}: {reason}") from None
    try:  # zoo's own checks of the parsed values, as a run makes them before it builds anything
        if config.get("population") is not None:
            _wrap_in_population(config)
        _complete(config)
    except ZooError as error:
        raise ZooError(f"{what}: {error}") from None
