"""The one place where analysis results become files and TensorBoard entries.

An analysis callback hands its result to an :class:`AnalysisWriter`, which knows
where one analysis of one run writes: ``<run dir>/analysis/<name>/`` for JSON and
PNG files, and the run's loggers for scalars, images, text and histograms.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger

from zoo.figures import render, save_png
from zoo.io import write_json


class AnalysisWriter:
    """Writes one analysis of one run: ``<run dir>/analysis/<name>/`` and the run's loggers.

    Every figure goes to TensorBoard and, as ``<tag>_epoch_<label>.png``, to the folder; the
    result as ``epoch_<label>.json`` (label ``007``, or ``init`` before training). Under
    ``fast_dev_run`` (a check that everything runs) it writes no file, as Lightning writes no
    checkpoint or log then. For one member of a population, files go to
    ``analysis/<name>/member_<i>/``; only member 0 draws its figures (PNG, and TensorBoard under
    ``<name>/member_000/``), and scalars are left to the population's summary.
    """

    def __init__(self, trainer: pl.Trainer, name: str, label: str = "000", member: int | None = None) -> None:
        self.trainer, self.name, self.label, self.member = trainer, name, label, member
        run_dir = None if trainer.fast_dev_run else trainer.log_dir or trainer.default_root_dir
        self.folder = Path(run_dir) / "analysis" / name if run_dir else None
        if self.folder is not None and member is not None:
            self.folder /= f"member_{member:03d}"
        self.step = trainer.global_step
        boards = (logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger))
        self.tensorboard = next(boards, None) if member in (None, 0) else None
        self.prefix = name if member is None else f"{name}/member_{member:03d}"

    def scalars(self, values: dict[str, float]) -> None:
        if self.member is not None:
            return
        for logger in self.trainer.loggers:
            logger.log_metrics({f"{self.name}/{key}": value for key, value in values.items()}, step=self.step)

    def figure(self, tag: str, figure: Figure) -> None:
        """Log a figure as a TensorBoard image and save it as PNG beside the JSON (one member's only)."""
        png = self.folder is not None and self.member in (None, 0)
        if self.tensorboard is None and not png:
            return  # nowhere to put it: skip the drawing, the costly part
        image = render(figure)
        if self.tensorboard is not None:
            self.tensorboard.add_image(f"{self.prefix}/{tag}", image[..., :3], global_step=self.step, dataformats="HWC")
        if png:
            save_png(self.folder / f"{tag.replace('/', '_')}_epoch_{self.label}.png", image)

    def text(self, tag: str, text: str) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_text(f"{self.prefix}/{tag}", text, global_step=self.step)

    def histogram(self, tag: str, values: torch.Tensor) -> None:
        if self.tensorboard is not None:
            values = values.detach().flatten().cpu()
            self.tensorboard.add_histogram(f"{self.prefix}/{tag}", values, global_step=self.step)

    def json(self, data: Any) -> Path | None:
        """The result as ``epoch_<label>.json``; returns its path (None under fast_dev_run)."""
        return write_json(self.folder / f"epoch_{self.label}.json", data) if self.folder is not None else None

    def earlier_results(self) -> list[dict]:
        """The results this analysis wrote at earlier epochs of the run (a resumed run's too), by epoch."""
        if self.folder is None:
            return []
        results = [json.loads(path.read_text()) for path in self.folder.glob("epoch_*.json")]
        return sorted(results, key=lambda result: result["epoch"])

    def log_error(self, text: str) -> Path | None:
        """Append a failure's account to ``errors.log`` in the analysis folder (not atomic: a log)."""
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "errors.log"
        with open(path, "a") as handle:
            handle.write(text + "\n")
        return path
