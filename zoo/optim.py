"""Learning-rate schedules whose horizon is the run's own length.

torch's ``CosineAnnealingLR`` needs ``T_max``, which a config would have to repeat from
``trainer.max_epochs`` (and every ``--trainer.max_epochs`` override would have to repeat
again). zoo's version leaves it out: the CLI sets it to the run's ``max_epochs``.
"""

from __future__ import annotations

import torch

from zoo.errors import ZooError


class CosineAnnealingLR(torch.optim.lr_scheduler.CosineAnnealingLR):
    """Cosine decay from the optimizer's rate to ``eta_min`` over ``T_max`` epochs (default: the whole run).

    Args:
        T_max: epochs of the decay; ``None`` lets zoo's CLI set it to ``trainer.max_epochs``.
        eta_min: the final learning rate.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, T_max: int | None = None, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if T_max is None or T_max < 1:
            raise ZooError(
                f"lr_scheduler.init_args.T_max must be a positive number of epochs, got {T_max}; "
                "leave it out to decay over trainer.max_epochs"
            )
        super().__init__(optimizer, T_max, eta_min, last_epoch)
