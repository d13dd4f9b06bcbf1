"""Lightning's callback dispatch, calling only the hooks a callback implements.

Lightning calls every hook of every callback, six per training step, implemented or not: for each,
it reads the callback's ``state_key`` (``ModelCheckpoint`` builds it from its settings every time)
and opens a profiler context. A zoo run has ten callbacks (its record, summaries, config and
checkpoints), nearly none of which does anything at these hooks: a step's six cost 190–230 µs with
Lightning's dispatch and 40–45 µs with this one (``bench.py speed``, 2 CPU threads); the difference is
6–8% of an FCNet [128] MNIST step. Lightning's maintainers raised the same idea and left it (PR 10575);
TorchTNT does it (PR 455).

:func:`call_implemented_hooks` is Lightning's ``_call_callback_hooks`` line for line, except that a
callback whose hook is :class:`~pytorch_lightning.Callback`'s own (which does nothing) is passed over.
What a run computes, and the order of the hooks that do something, are unchanged; a profiler
(``--trainer.profiler simple``) no longer lists the hooks that did nothing. :func:`install` puts it in
Lightning's place only where Lightning's function has the signature it was written against; zoo's CLI
installs it for every trainer it builds.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping
from pytorch_lightning.trainer import call

log = logging.getLogger(call.__name__)
LIGHTNINGS = call._call_callback_hooks
SIGNATURE = ("trainer", "hook_name", "args", "monitoring_callbacks", "kwargs")
"""The parameters of the Lightning function :func:`call_implemented_hooks` was written against (Lightning 2.6)."""


@functools.cache
def implements(kind: type[pl.Callback], hook: str) -> bool:
    """Whether callbacks of class ``kind`` do something at ``hook``: their class (or a base) overrides Callback's."""
    return getattr(kind, hook, None) is not getattr(pl.Callback, hook, None)


def call_implemented_hooks(
    trainer: pl.Trainer, hook_name: str, *args: Any, monitoring_callbacks: bool | None = None, **kwargs: Any
) -> None:
    """Lightning's ``_call_callback_hooks``, passing over callbacks that do not implement ``hook_name``."""
    log.debug(f"{trainer.__class__.__name__}: calling callback hook: {hook_name}")
    pl_module = trainer.lightning_module
    if pl_module:
        prev_fx_name = pl_module._current_fx_name
        pl_module._current_fx_name = hook_name
    callbacks = trainer.callbacks
    if monitoring_callbacks is True:  # Lightning's "monitoring callbacks": these two kinds
        callbacks = [cb for cb in callbacks if isinstance(cb, (EarlyStopping, Checkpoint))]
    elif monitoring_callbacks is False:
        callbacks = [cb for cb in callbacks if not isinstance(cb, (EarlyStopping, Checkpoint))]
    for callback in callbacks:
        on_instance = hook_name in getattr(callback, "__dict__", ())  # a hook set on the callback itself
        if not (on_instance or implements(type(callback), hook_name)):
            continue
        fn = getattr(callback, hook_name)
        if callable(fn):
            with trainer.profiler.profile(f"[Callback]{callback.state_key}.{hook_name}"):
                fn(trainer, trainer.lightning_module, *args, **kwargs)
    if pl_module:
        pl_module._current_fx_name = prev_fx_name  # restore current_fx when nested context


def install() -> bool:
    """Dispatch callback hooks with :func:`call_implemented_hooks` from now on; False where Lightning's differs.

    Where Lightning's function has other parameters than it was written against (a newer Lightning),
    Lightning's own stays: every hook is called, as before.
    """
    if call._call_callback_hooks is call_implemented_hooks:
        return True
    if tuple(inspect.signature(LIGHTNINGS).parameters) != SIGNATURE:
        return False
    call._call_callback_hooks = call_implemented_hooks
    return True
