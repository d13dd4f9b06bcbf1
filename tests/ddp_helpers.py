"""A callback the DDP test's worker processes import by class path (so not a test module)."""

from pathlib import Path

import pytorch_lightning as pl
import torch


class SeenSamples(pl.Callback):
    """Saves the inputs this rank trained on, to ``<folder>/seen_rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder, self.seen = Path(folder), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(batch[0].detach().cpu())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.save(torch.cat(self.seen), self.folder / f"seen_rank{trainer.global_rank}.pt")
