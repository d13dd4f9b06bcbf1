"""zoo.hooks: Lightning's callback dispatch, passing over the hooks a callback does not implement."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.profilers import SimpleProfiler
from pytorch_lightning.trainer import call

from zoo import ZooDataModule, create_model
from zoo.cli import main as zoo
from zoo.hooks import LIGHTNINGS, call_implemented_hooks, implements, install


class Recorder(pl.Callback):
    """Records the hooks it implements, in order, with the hook name Lightning says is running."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def _note(self, hook: str, module: pl.LightningModule) -> None:
        self.calls.append((hook, module._current_fx_name))

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._note("on_train_batch_start", module)

    def on_before_backward(self, trainer, module, loss) -> None:
        self._note("on_before_backward", module)

    def on_validation_epoch_end(self, trainer, module) -> None:
        self._note("on_validation_epoch_end", module)

    def on_train_end(self, trainer, module) -> None:
        self._note("on_train_end", module)


class Idle(pl.Callback):
    """Implements nothing: Lightning calls its hooks all the same; zoo's dispatch passes over them."""


class Inherits(Recorder):
    """Implements what its base class implements."""


def _fit(dispatch, monkeypatch, tmp_path) -> tuple[list[Recorder], set[str]]:
    monkeypatch.setattr(call, "_call_callback_hooks", dispatch)
    recorders = [Recorder(), Inherits()]
    on_instance = Idle()
    on_instance.on_after_backward = lambda trainer, module: recorders[0].calls.append(("instance", "on_after_backward"))
    profiler = SimpleProfiler()
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[*recorders, Idle(), on_instance],
        profiler=profiler,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    data = ZooDataModule("iris", batch_size=32)
    trainer.fit(create_model("FCNet", hidden=[8], input_shape=(4,), num_outputs=3), datamodule=data)
    return recorders, set(profiler.recorded_durations)


def test_the_hooks_a_callback_implements_run_as_under_lightnings_own_dispatch(monkeypatch, tmp_path):
    lightnings, profiled_by_lightning = _fit(LIGHTNINGS, monkeypatch, tmp_path / "lightning")
    zoos, profiled_by_zoo = _fit(call_implemented_hooks, monkeypatch, tmp_path / "zoo")
    for theirs, ours in zip(lightnings, zoos):
        assert ours.calls == theirs.calls
        assert ("on_before_backward", "on_before_backward") in ours.calls  # the running hook's name, as Lightning's
    assert ("instance", "on_after_backward") in zoos[0].calls  # a hook set on the instance runs too
    # Lightning calls every hook of the idle callback; zoo's dispatch calls none of them
    assert "[Callback]Idle.on_before_backward" in profiled_by_lightning
    assert not any(name.startswith("[Callback]Idle.on_before_") for name in profiled_by_zoo)
    assert "[Callback]Idle.on_after_backward" in profiled_by_zoo  # set on the instance: implemented there
    assert "[Callback]Recorder.on_train_batch_start" in profiled_by_zoo
    assert profiled_by_zoo < profiled_by_lightning


def test_implements_sees_overrides_in_the_class_and_its_bases():
    assert implements(Recorder, "on_before_backward")
    assert implements(Inherits, "on_train_end")
    assert not implements(Recorder, "on_after_backward")
    assert not implements(Idle, "on_train_batch_start")


def test_zoos_trainer_dispatches_with_it_and_the_installed_lightning_accepts_it(run_dir, monkeypatch):
    """Fails where a newer Lightning changed the function replaced: zoo would fall back to Lightning's own."""
    monkeypatch.setattr(call, "_call_callback_hooks", LIGHTNINGS)
    zoo(["--model", "FCNet", "--data.dataset", "iris", "--trainer.callbacks", "null"], run=False)
    assert call._call_callback_hooks is call_implemented_hooks
    assert install()


def test_a_lightning_with_another_signature_keeps_its_own(monkeypatch):
    def newer(trainer, hook_name, *args, monitoring_callbacks=None, only=None, **kwargs) -> None:
        raise AssertionError("not called here")

    monkeypatch.setattr(call, "_call_callback_hooks", newer)
    monkeypatch.setattr("zoo.hooks.LIGHTNINGS", newer)
    assert not install()
    assert call._call_callback_hooks is newer
