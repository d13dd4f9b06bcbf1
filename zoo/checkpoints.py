"""Reading zoo checkpoints: one clear message for a file that is missing, corrupt, foreign or mismatched.

Loading itself is Lightning's (``load_from_checkpoint``); this module finds the
architecture a checkpoint holds (zoo records it in every checkpoint) and turns what
can go wrong into a ``ZooError`` that names the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.errors import LINKED, ZooError, first_line
from zoo.io import to_jsonable
from zoo.models.registry import get_model_class, list_models


def read_checkpoint(checkpoint_path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dictionary, or a clear error for a missing, corrupt or foreign file."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)  # loading must not run code
    except Exception as error:
        if "torch.cuda.is_available() is False" in str(error) or "not compiled with CUDA" in str(error):
            raise ZooError(
                f"{path}: map_location {map_location!r} names a device this machine lacks (no CUDA here); "
                "load it on the CPU (map_location='cpu') and move the model after"
            ) from None
        said = first_line(error).split(". ")[0]  # torch's first sentence (its advice runs on)
        said = said if len(said) <= 160 else said[:160].rsplit(" ", 1)[0] + " …"  # cut between words, and say so
        raise ZooError(
            f"{path}: not a readable checkpoint; it is corrupt, truncated or another kind of file "
            f"({type(error).__name__}: {said})"
        ) from None
    if not isinstance(checkpoint, dict) or not {"zoo", "state_dict", "pytorch-lightning_version"} <= checkpoint.keys():
        raise ZooError(f"{path}: not a zoo checkpoint (it has no record of the architecture that wrote it)")
    return checkpoint


def model_class(checkpoint: dict, path: str | Path) -> type:
    """The registered architecture a checkpoint (as :func:`read_checkpoint` returns it) holds."""
    name = checkpoint["zoo"]["model"]
    try:
        return get_model_class(name)
    except ZooError:
        module = checkpoint["zoo"].get("module", "")
        if module and not module.startswith("zoo."):  # registered by the user's own code, not loaded here
            raise ZooError(
                f"{path}: holds a {name}, defined in module {module!r}, which registers it: import that module "
                f"first (this session knows {', '.join(list_models())})"
            ) from None
        raise ZooError(
            f"{path}: holds a {name}, which this version of zoo does not have; accepted: {', '.join(list_models())}"
        ) from None


def load_model(checkpoint_path: str | Path, map_location: str | torch.device = "cpu", member: int | None = None):
    """Rebuild a trained model from a zoo checkpoint alone (architecture, hyper-parameters, weights).

    ``member`` takes member ``member`` out of the checkpoint (see ``ZooModule.members``): one of a
    population's, as an ordinary model; a single model is its own member 0. The model comes in eval mode
    (dropout off, as for analysing or predicting; Hugging Face's ``from_pretrained`` does the same):
    ``.train()`` to train it on.
    """
    cls = model_class(read_checkpoint(checkpoint_path, map_location), checkpoint_path)
    try:
        model = cls.load_from_checkpoint(checkpoint_path, map_location=map_location, weights_only=True)
    except RuntimeError as error:
        raise ZooError(
            f"{checkpoint_path}: its weights do not fit a {cls.__name__} with its saved hyper-parameters "
            f"({str(error).splitlines()[0]})"
        ) from None
    model.eval()
    if member is None:
        return model
    try:
        return model.member(member).eval()
    except ZooError as error:
        raise ZooError(f"{checkpoint_path}: {error}") from None


def check_checkpoint(checkpoint: dict, path: str | Path, model: torch.nn.Module) -> None:
    """Refuse, with one clear message, a checkpoint whose tensors ``model`` cannot load."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    saved = {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}
    for key in sorted(expected.keys() | saved.keys()):
        if expected.get(key) != saved.get(key):
            there, here = saved.get(key, "absent"), expected.get(key, "absent")
            raise ZooError(
                f"{path}: does not fit this {type(model).__name__}: {key} is {there} in the checkpoint "
                f"and {here} in the model built by this configuration{_settings_apart(checkpoint, model)}"
            )


def _settings_apart(checkpoint: dict, model: torch.nn.Module) -> str:
    """Which of the model's hyper-parameters the checkpoint was built with otherwise: what to change, said."""
    saved, built = checkpoint.get("hyper_parameters") or {}, dict(getattr(model, "hparams", {}))
    # compared as plain data: a tuple built here equals the list it was saved as
    apart = [key for key in built if key in saved and to_jsonable(saved[key]) != to_jsonable(built[key])]
    if not apart:
        return ""
    said = "; ".join(f"{key} {saved[key]!r} there, {built[key]!r} here" for key in apart)
    linked = [key for key in LINKED if key in apart]
    verb = "comes" if len(linked) == 1 else "come"
    given = f"; {' and '.join(linked)} {verb} from the data (data.dataset, data.outputs)" if linked else ""
    return f" (built with other settings: {said}{given})"
