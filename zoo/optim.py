"""Learning-rate schedules whose horizon is the run's own length.

torch's ``CosineAnnealingLR`` needs ``T_max``, which a config would have to repeat from
``trainer.max_epochs`` (and every ``--trainer.max_epochs`` override would have to repeat
again). zoo's version leaves it out: the CLI sets it to the run's ``max_epochs``, and a
resumed run keeps to it: resumed with more (or fewer) epochs, the decay ends at the new end.
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

    def load_state_dict(self, state_dict: dict) -> None:
        """A resumed run's schedule: the checkpoint's place in it, over this run's ``T_max``.

        torch restores ``T_max`` with the rest, so a run resumed with a larger ``trainer.max_epochs``
        trained its extra epochs at the final rate (``eta_min``: 0 by default). Where the horizons
        differ, the rate is set to the cosine's value at the epoch reached over the configured
        ``T_max`` (torch's closed form; later steps continue from it); where they agree, nothing changes.
        """
        configured = self.T_max
        super().load_state_dict(state_dict)
        if self.T_max != configured:
            self.T_max = configured
            rates = self._get_closed_form_lr()
            for group, rate in zip(self.optimizer.param_groups, rates):
                group["lr"] = rate
            self._last_lr = list(rates)
