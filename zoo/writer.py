"""The one place where analysis results become files and TensorBoard entries.

An :class:`AnalysisWriter` knows where one analysis writes: a folder for JSON and PNG
files, and optionally TensorBoard (a ``SummaryWriter``) and Lightning loggers for scalars.
A run's callbacks make one with :meth:`AnalysisWriter.of_run`; ``scripts/analyze.py`` makes
one from a folder alone, and writes the same files.
"""

from __future__ import annotations

import atexit
import gc
import io
import json
import os
import pickle
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from zoo.analyses import Analysis
from zoo.figures import noted, png, render
from zoo.io import encode_json, to_jsonable, write_bytes


class FigureWorker:
    """Draws and encodes figures in the background, in the order given, while training goes on.

    Drawing is the costly part of an analysis (matplotlib, then PNG encoding); the numbers and
    the JSON are written at once, the figures when the worker gets to them. :meth:`flush` waits
    for every figure handed over so far: callbacks call it when training ends, fails or is
    stopped (SIGTERM reaches them as an exception), and at interpreter exit, so a run's figures
    are complete whenever it ends. A figure that fails to draw is reported by ``on_error``.
    ``inline`` draws each figure at once instead (what the benchmarks compare against).

    Jobs are taken by one thread, which ends as soon as nothing is left to draw (the next figure
    starts a new one). A thread kept waiting instead slows training for the rest of the run: once
    it has run a torch operation, the training thread's parallel CPU kernels run 15–25% slower
    (measured on configs/fc.yaml's epochs, 2 threads; gone when the thread ends).

    Where the system forks (Linux) and CUDA is not in use, a run's writers draw each pass's figures
    in a process forked for it (:meth:`draw_in_child`), one pass per usable CPU at once (at most
    :attr:`most_children`), and the thread only starts them and waits. Drawn on a thread of the
    training process, figures hold the interpreter's lock most of the time, and a training step
    waits for it between operations: configs/fc.yaml's model, 2 CPU threads, 12–15 ms a step
    alone, 70–79 ms beside a drawing thread, 45 ms beside a drawing process, 14.5 ms beside one at
    the lowest priority (nice 19), which draws on what training leaves idle: a core beside a small
    network's Python-bound steps, then every core once training ends. On a machine kept busy by
    other work (a sweep's other workers), a run's figures therefore wait for a core, and its end
    with them: the machine's work is reordered, not lost. Leaving it a core by taking a thread
    from training instead would make a run's numbers depend on when figures were drawn (sums
    split over another number of threads). ``fork`` false keeps figures on the thread.
    """

    most_children = 4  # passes drawn at once, a process each

    def __init__(self) -> None:
        self.inline = False
        self.fork = sys.platform.startswith("linux")  # macOS's system libraries are unsafe in a forked child
        self.jobs: deque[Callable[[], Callable[[], None] | None]] = deque()
        self.drawing: threading.Thread | None = None  # the thread that draws, while there is something to draw
        self.in_hand = 0  # jobs taken from the queue and not done yet: the one drawn here, or those drawn by processes
        self.done = threading.Condition()

    @property
    def forks(self) -> bool:
        """Whether figures are drawn in forked processes now (never once CUDA is in use: a child cannot use it)."""
        usable = hasattr(os, "fork") and threading.main_thread().is_alive()  # not while the interpreter exits
        return self.fork and not self.inline and usable and not torch.cuda.is_initialized()

    def submit(
        self, draw: Callable[[], Callable[[], None] | None], on_error: Callable[[BaseException, str], None]
    ) -> None:
        """Run ``draw`` on the worker; a failure goes to ``on_error(error, traceback)``.

        ``draw`` may start work elsewhere (a process) and return the rest of it, which the worker calls once
        the processes it has started fill the usable CPUs, or nothing is left to start.
        """

        def guarded(work: Callable[[], Any]) -> Any:
            try:
                return work()
            except Exception as error:  # reported as the analysis's own failure would be
                on_error(error, traceback.format_exc())

        def job() -> Callable[[], None] | None:
            rest = guarded(draw)
            return (lambda: guarded(rest)) if callable(rest) else None

        if self.inline or not threading.main_thread().is_alive():  # the interpreter is exiting: no thread joins
            return _whole(job)
        with self.done:
            self.jobs.append(job)
            if self.drawing is None:
                self._start_drawing()

    def _start_drawing(self) -> None:
        """A thread for the figures queued (the caller holds ``done``); where none can start, they are drawn here."""
        thread = threading.Thread(target=self._draw_all, name="zoo-figures")
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a thread limit, interpreter shutdown): nothing is lost
            while self.jobs:
                _whole(self.jobs.popleft())
            self.done.notify_all()
            return
        self.drawing = thread

    def _draw_all(self) -> None:
        started: deque[Callable[[], None]] = deque()  # the rest of the jobs whose processes draw now
        at_once = max(1, min(self.most_children, _usable_cpus()))
        try:
            while True:
                with self.done:
                    self.in_hand = len(started)
                    job = self.jobs.popleft() if self.jobs and len(started) < at_once else None
                    if job is None and not started:
                        return
                    self.in_hand += job is not None
                if job is None:
                    started.popleft()()
                else:
                    rest = job()
                    if rest is not None:
                        started.append(rest)
        finally:
            while started:  # a job raised past its handler: the others' processes are still waited for
                started.popleft()()
            with self.done:
                self.drawing, self.in_hand = None, 0
                if self.jobs:  # handed over as this thread ended, or left by a job that raised past its handler
                    self._start_drawing()
                self.done.notify_all()

    @property
    def pending(self) -> int:
        """Figures handed over and not drawn yet (those being drawn included)."""
        with self.done:
            return len(self.jobs) + self.in_hand

    def flush(self) -> None:
        """Wait until every figure handed over so far is drawn and written."""
        with self.done:
            if self.drawing is threading.current_thread():
                raise RuntimeError("FigureWorker.flush called by a figure being drawn: it would wait for itself")
            self.done.wait_for(lambda: self.drawing is None)

    @staticmethod
    def draw_in_child(draw: Callable[[], Any]) -> Callable[[], Any]:
        """Start ``draw()`` in a process forked for it; a function that waits for it and returns what it returned
        (pickled back), or raises what it raised as :class:`DrawnElsewhere`.

        The child runs at the lowest priority on one CPU thread, ignores Ctrl+C and SIGTERM (sent to a run's whole
        process group, they stop the run, which waits for its figures; SIGKILL still ends the child), and ends with
        ``os._exit``: nothing of the training process (its atexit, its buffers) runs twice. Where no process can be
        had, ``draw()`` runs here at once.
        """
        reading, writing = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to be had (memory, a process limit): drawn here, as on a system without fork
            os.close(reading)
            os.close(writing)
            value = draw()
            return lambda: value
        if pid == 0:
            _child(draw, reading, writing)
        os.close(writing)
        return lambda: _outcome(pid, reading)


def _usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, where the system has one (a Slurm job's share, say)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _whole(job: Callable[[], Callable[[], None] | None]) -> None:
    """A job and the rest of it, at once."""
    rest = job()
    if rest is not None:
        rest()


def _outcome(pid: int, reading: int) -> Any:
    """What child ``pid`` sent back on ``reading`` once it ended, or its failure raised."""
    with os.fdopen(reading, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not message:  # no traceback to be had: the error's words stand for it (errors.log)
        error = RuntimeError(f"the process drawing figures ended ({_ended(status)}) before it said what it drew")
        raise DrawnElsewhere(error, f"RuntimeError: {error}\n")
    outcome, value = pickle.loads(message)
    if outcome == "failed":
        raise DrawnElsewhere(*value)
    return value


class DrawnElsewhere(Exception):
    """A figure failed in the process that drew it: the error (or its words) and that process's traceback."""

    def __init__(self, error: BaseException, trace: str) -> None:
        super().__init__(str(error))
        self.error, self.trace = error, trace


def _child(draw: Callable[[], Any], reading: int, writing: int) -> None:
    """The forked child's whole life: draw, send back the outcome, exit without running the parent's exit code."""
    status = 1
    try:
        os.close(reading)
        os.nice(19)  # what training leaves idle: its steps run as fast beside it
        for stop in (signal.SIGINT, signal.SIGTERM):  # sent to the whole group, they stop the run: its figures end
            signal.signal(stop, signal.SIG_IGN)
        # Fresh streams for warnings: the inherited ones' locks may have been held by another thread (a progress bar)
        sys.stdout = open(os.dup(1), "w", closefd=True)
        sys.stderr = open(os.dup(2), "w", closefd=True)
        torch.set_num_threads(1)
        # The child lives for one pass: what it inherits needs no collecting, and a full collection would walk
        # it all and write to every object's header, copying each page of the inherited heap (see gc.freeze)
        gc.freeze()
        try:
            message = pickle.dumps(("drawn", draw()))
        except Exception as error:
            trace = traceback.format_exc()
            try:
                message = pickle.dumps(("failed", (error, trace)))
            except Exception:  # an error that does not pickle: its words
                message = pickle.dumps(("failed", (RuntimeError(f"{type(error).__name__}: {error}"), trace)))
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(message)
        sys.stdout.flush()  # what the figures printed or warned: os._exit flushes nothing
        sys.stderr.flush()
        status = 0
    finally:
        os._exit(status)


def _ended(status: int) -> str:
    """How a child ended, in words, from ``os.waitpid``'s status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


FIGURES = FigureWorker()
atexit.register(FIGURES.flush)


class AnalysisWriter:
    """Writes one analysis: ``folder`` for JSON and PNG, ``tensorboard`` and ``loggers`` for the rest.

    Every figure goes to TensorBoard and, as ``<tag>_epoch_<label>.png``, to the folder; the
    result as ``epoch_<label>.json`` (label ``007``, or ``init`` before training). ``folder``
    ``None`` writes no file (a run under ``fast_dev_run``). For one member of a population
    (``member``), files go to ``<folder>/member_000/``, …; only member 0 draws its figures (PNG,
    and TensorBoard under ``<prefix>/member_000/``), and scalars are left to the population's summary.
    With ``background``, figures are drawn by :data:`FIGURES` (a run's writers: training goes on
    meanwhile; :meth:`FigureWorker.flush` waits for them). ``when`` is what figure titles say the
    result shows where its epoch would mislead (``after prune``: surgery's checkpoints record epoch 0).
    """

    def __init__(
        self,
        folder: str | Path | None,
        *,
        prefix: str,
        label: str = "000",
        step: int = 0,
        tensorboard: Any = None,
        loggers: Sequence[Any] = (),
        member: int | None = None,
        background: bool = False,
        when: str | None = None,
    ) -> None:
        self.background, self.when = background, when
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None and member is not None:
            self.folder /= f"member_{member:03d}"
        self.label, self.step, self.member, self.loggers = label, step, member, list(loggers)
        self.tensorboard = tensorboard if member in (None, 0) else None
        self.prefix = prefix if member is None else f"{prefix}/member_{member:03d}"
        self.name = prefix

    @classmethod
    def of_run(
        cls, trainer: Any, name: str, label: str = "000", *, member: int | None = None, background: bool = True
    ) -> AnalysisWriter:
        """The writer of analysis ``name`` in a run: ``<run dir>/analysis/<name>/`` and the run's loggers.

        Its figures are drawn in the background (:data:`FIGURES`) unless ``background`` is false.
        """
        from pytorch_lightning.loggers import TensorBoardLogger

        from zoo.runs import run_dir

        folder = None if trainer.fast_dev_run else run_dir(trainer) or trainer.default_root_dir
        boards = (logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger))
        return cls(
            Path(folder) / "analysis" / name if folder else None,
            prefix=name,
            label=label,
            step=trainer.global_step,
            tensorboard=next(boards, None),
            loggers=trainer.loggers,
            member=member,
            background=background,
        )

    def write(
        self,
        analysis: Analysis,
        result: Any,
        *,
        epoch: int,
        on_figure_error: Callable[[BaseException, str], None] | None = None,
        earlier: dict[int, dict] | None = None,
        summary: dict[str, float] | None = None,
    ) -> Path | None:
        """Everything ``analysis`` declares for ``result``: scalars, histograms, texts, figures, then the JSON.

        Drawn in the background, a figure that fails is reported to ``on_figure_error(error, traceback)``
        (default: a warning, the traceback in ``errors.log``); drawn here, it raises. ``earlier``: the
        results written so far, by epoch, kept by the caller across a run's passes (this one is added
        to it), so that a figure over epochs reads nothing from disk; ``None``: read from the folder.
        ``summary``: ``analysis.summary(result)``, where the caller has it already.
        """
        summary = analysis.summary(result) if summary is None else summary
        data = {"epoch": epoch, **to_jsonable(result), "summary": to_jsonable(summary)}
        self.scalars(summary)
        for tag, values in analysis.histograms(result).items():
            self.histogram(tag, values)
        for tag, text in analysis.texts(result).items():
            self.text(tag, text)
        if self.draws:  # drawing is the costly part: only where a figure goes
            known = earlier if earlier is not None else {old["epoch"]: old for old in self.earlier_results()}
            history = [known[other] for other in sorted(known) if other != epoch] + [data]
            on_error = on_figure_error or self._figure_failed

            def draw() -> list[tuple[str, bytes]]:
                """Every figure: its PNG file written; what goes to TensorBoard returned, (tag, PNG)."""
                images = []
                for tag, figure in analysis.figures_for(result, history=history).items():
                    images += self.figure(tag, noted(figure, self.note(epoch)))
                return images

            def draw_and_log() -> Callable[[], None] | None:
                """Draw here, or start a process that draws and return the rest: its TensorBoard images logged."""
                if not FIGURES.forks:
                    return self.images(draw())
                drawn = FIGURES.draw_in_child(draw)

                def log() -> None:
                    try:
                        self.images(drawn())
                    except DrawnElsewhere as failure:
                        on_error(failure.error, failure.trace)

                return log

            if self.background:
                FIGURES.submit(draw_and_log, on_error=on_error)
            else:
                self.images(draw())
        written = self.json(data)
        if earlier is not None:
            earlier[epoch] = data
        return written

    def note(self, epoch: int) -> str:
        """What a figure's title says it shows: the epoch (or before training), and the member of a population."""
        when = self.when or ("before training" if epoch < 0 else f"epoch {epoch}")
        return when if self.member is None else f"{when}, member {self.member}"

    def _figure_failed(self, error: BaseException, trace: str) -> None:
        """A figure drawn in the background failed: say so, and keep the traceback in ``errors.log``."""
        from pytorch_lightning.utilities import rank_zero_warn

        log = self.log_error(f"figures of {self.label}: {trace}")
        rank_zero_warn(f"{self.name}: a figure of {self.label} failed to draw: {error}; traceback in {log}")

    @property
    def draws(self) -> bool:
        """Whether a figure goes anywhere: TensorBoard, or a PNG (member 0's only)."""
        return self.tensorboard is not None or (self.folder is not None and self.member in (None, 0))

    def scalars(self, values: dict[str, float]) -> None:
        if self.member is not None:
            return
        if self.loggers:
            for logger in self.loggers:
                logger.log_metrics({f"{self.name}/{key}": value for key, value in values.items()}, step=self.step)
        elif self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(f"{self.name}/{key}", value, global_step=self.step)

    def figure(self, tag: str, figure: Figure) -> list[tuple[str, bytes]]:
        """Draw a figure and save it as PNG beside the JSON (one member's only); ``[(tag, PNG)]`` for TensorBoard.

        The TensorBoard image is left to the caller (:meth:`image`): a figure may be drawn in another process.
        """
        to_file = self.folder is not None and self.member in (None, 0)
        if self.tensorboard is None and not to_file:
            return []
        encoded = png(render(figure))  # once, for TensorBoard and the file alike
        if to_file:
            write_bytes(self.folder / f"{tag.replace('/', '_')}_epoch_{self.label}.png", encoded)
        return [(f"{self.prefix}/{tag}", encoded)] if self.tensorboard is not None else []

    def images(self, images: list[tuple[str, bytes]]) -> None:
        for tag, encoded in images:
            self.image(tag, encoded)

    def image(self, tag: str, encoded: bytes) -> None:
        """A PNG to TensorBoard as it is (torch's writer), else decoded to its array."""
        from PIL import Image
        from torch.utils.tensorboard import SummaryWriter

        with Image.open(io.BytesIO(encoded)) as picture:
            if not isinstance(self.tensorboard, SummaryWriter):  # e.g. tensorboardX's, with protos of its own
                pixels = np.asarray(picture.convert("RGB"))
                self.tensorboard.add_image(tag, pixels, global_step=self.step, dataformats="HWC")
                return
            (width, height), channels = picture.size, len(picture.getbands())
        from tensorboard.compat.proto.summary_pb2 import Summary

        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=encoded)
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        self.tensorboard._get_file_writer().add_summary(summary, self.step)  # what add_image does after encoding

    def text(self, tag: str, text: str) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_text(f"{self.prefix}/{tag}", text, global_step=self.step)

    def histogram(self, tag: str, values: torch.Tensor) -> None:
        if self.tensorboard is not None:
            values = values.detach().flatten().float().cpu()
            self.tensorboard.add_histogram(f"{self.prefix}/{tag}", values, global_step=self.step)

    def json(self, data: Any) -> Path | None:
        """The result (plain: :func:`~zoo.io.to_jsonable`'s) as compact ``epoch_<label>.json``; its path, or None."""
        if self.folder is None:
            return None
        return write_bytes(self.folder / f"epoch_{self.label}.json", encode_json(data))

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
