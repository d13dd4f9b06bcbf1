"""What keeps small networks at the speed of their arithmetic: no per-step sync, a light import, batched analyses."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from conftest import CONFIGS

from zoo.analysis import activation_analysis, task_separation
from zoo.analysis.members import activation_analysis_of_members, task_separation_of_members
from zoo.models import Population
from zoo.models.base import FiniteWatch


@pytest.mark.parametrize("eager", [True, False])
def test_the_finite_watch_names_each_members_first_non_finite_step_and_loss(eager):
    """Read every step (CPU) or only at the end (flags kept on the device): the same failure."""
    watch = FiniteWatch(eager=eager)
    losses = [[1.0, 2.0, 3.0], [1.0, math.inf, 3.0], [math.nan, math.nan, 3.0]]
    for step, values in enumerate(losses):
        watch.observe(torch.tensor(values), step)
        if eager and watch.failed():
            break
    members, steps, values = watch.failed()
    if eager:  # a CPU run stops at the first failure
        assert (members, steps, values) == ([1], [1], [math.inf])
    else:
        assert members == [0, 1] and steps == [2, 1]
        assert math.isnan(values[0]) and values[1] == math.inf


def test_a_finite_run_has_no_failure():
    watch = FiniteWatch(eager=False)
    for step in range(3):
        watch.observe(torch.tensor(0.5), step)
    assert watch.failed() is None


def _imported_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after running ``statement`` (this checkout's zoo)."""
    probe = f"import json, sys; {statement}; print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_import_zoo_loads_no_plotting_science_or_search_library():
    """``import zoo`` costs nothing heavy: Lightning, and through it matplotlib and SciPy, come on first use."""
    heavy = ("matplotlib", "scipy", "sklearn", "optuna", "pytorch_lightning", "zoo.sweep", "zoo.figures")
    assert _imported_after("import zoo", heavy) == []
    assert _imported_after("import zoo; zoo.ZooError", heavy) == []
    assert "pytorch_lightning" in _imported_after("from zoo import ZooModule", heavy)  # the names still work


def test_the_command_line_loads_no_search_machinery():
    """``python -m zoo fit`` needs no Optuna, scikit-learn or sweep code (``scripts/sweep.py`` does)."""
    assert _imported_after("import zoo.cli", ("sklearn", "optuna", "zoo.sweep")) == []


def _assert_equal_results(batched: object, alone: object, where: str = "") -> None:
    """Every field of two analysis results equal (tensors to float tolerance), recursively."""
    if dataclasses.is_dataclass(alone):
        for field in dataclasses.fields(alone):
            _assert_equal_results(getattr(batched, field.name), getattr(alone, field.name), f"{where}.{field.name}")
    elif isinstance(alone, dict):
        assert batched.keys() == alone.keys(), where
        for key in alone:
            _assert_equal_results(batched[key], alone[key], f"{where}[{key}]")
    elif isinstance(alone, list | tuple):
        assert len(batched) == len(alone), where
        for index, (mine, theirs) in enumerate(zip(batched, alone)):
            _assert_equal_results(mine, theirs, f"{where}[{index}]")
    elif isinstance(alone, torch.Tensor):
        assert torch.allclose(batched, alone, atol=1e-5, rtol=1e-4, equal_nan=True), where
    elif isinstance(alone, float):
        assert batched == pytest.approx(alone, abs=1e-5, nan_ok=True), where
    else:
        assert batched == alone, where


@pytest.mark.parametrize(
    ("architecture", "member", "task", "shape"),
    [
        ("FCNet", {"hidden": [8, 6], "activation": "tanh"}, "regression", (4, 2)),
        ("ColumNet", {"hidden": [5], "activations": ["relu", "tanh"]}, "classification", (4, 3)),
        ("SparseNet", {"hidden": [12], "density": 0.3}, "classification", (4, 3)),
    ],
)
def test_task_separation_of_all_members_at_once_is_each_members_own(architecture, member, task, shape):
    features, outputs = shape
    population = Population(
        architecture, size=5, member=member, first_seed=3, input_shape=(features,), num_outputs=outputs, task=task
    )
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(90, features, generator=generator)
    if task == "classification":
        targets = torch.arange(90) % (outputs - 1)  # the last class absent: its NaN rows must agree too
    else:
        targets = torch.randn(90, outputs, generator=generator)
    batched = task_separation_of_members(population, inputs, targets, chunk_size=5 * 16, data="train")
    assert len(batched) == 5
    for index, result in enumerate(batched):
        alone = task_separation(population.member(index), inputs, targets, chunk_size=16, data="train")
        _assert_equal_results(result, alone, f"member {index}")
        assert result.summary().keys() == alone.summary().keys()
        for key, value in alone.summary().items():
            assert result.summary()[key] == pytest.approx(value, abs=1e-5, nan_ok=True), (index, key)


@pytest.mark.parametrize(
    ("architecture", "member", "task", "width"),
    [
        ("FCNet", {"hidden": [8, 6], "activation": "tanh"}, "regression", 4),
        ("FCNet", {"hidden": [12, 5], "activation": "relu"}, "classification", 4),  # every k in one pass
        ("SparseNet", {"hidden": [10], "density": 0.5}, "regression", 4),
        ("FCNet", {"hidden": [70], "activation": "relu"}, "classification", 4),  # wider than 64: bisected
        ("ColumNet", {"hidden": [5], "activations": ["relu", "tanh"]}, "classification", 4),  # a k per pass
    ],
)
def test_activation_analysis_of_all_members_at_once_is_each_members_own(architecture, member, task, width):
    outputs = 2 if task == "regression" else 3
    population = Population(
        architecture, size=4, member=member, first_seed=1, input_shape=(width,), num_outputs=outputs, task=task
    )
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(120, width, generator=generator)
    if task == "classification":
        targets = torch.arange(120) % outputs
    else:
        targets = torch.randn(120, outputs, generator=generator)
    batched = activation_analysis_of_members(population, inputs, targets, chunk_size=4 * 32, data="train")
    assert len(batched) == 4
    for index, result in enumerate(batched):
        alone = activation_analysis(population.member(index), inputs, targets, chunk_size=32, data="train")
        _assert_equal_results(result, alone, f"member {index}")
        assert result.summary() == pytest.approx(alone.summary())


def test_a_wide_input_layer_computed_for_all_members_at_once_gives_each_members_outputs_and_gradients():
    """Inputs of 64+ features: the members' first layer is one product on the shared input (the batched path)."""
    population = Population("FCNet", size=3, member={"hidden": [16, 8]}, first_seed=2, input_shape=(1, 8, 8))
    assert population.shared_input_layer == "blocks.0.0"
    inputs, targets = torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,))
    population.loss(population(inputs), targets).backward()
    hidden = population.forward_with_hidden(inputs)[1]
    for index in range(3):
        member = population.member(index)
        outputs, own_hidden = member.forward_with_hidden(inputs)
        assert torch.allclose(population(inputs)[index], outputs, atol=1e-6)
        assert torch.allclose(hidden["fc1"][index], own_hidden["fc1"], atol=1e-6)
        member.loss(outputs, targets).backward()
        for name, parameter in member.named_parameters():
            stacked = population.member_parameters()[name].grad[index]
            assert torch.allclose(stacked, parameter.grad, atol=1e-6), (index, name)


def test_figures_drawn_in_the_background_are_complete_when_a_run_is_interrupted(run_dir, monkeypatch):
    """Figures lag behind training (drawing made slow here); a run stopped right after an analysis keeps them all."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from zoo.cli import main
    from zoo.writer import FIGURES, AnalysisWriter

    figure = AnalysisWriter.figure

    def slow_figure(self, tag, image):
        time.sleep(0.3)  # still drawing when training is interrupted
        (run_dir / f"drawn_by_{os.getpid()}").touch()
        return figure(self, tag, image)

    monkeypatch.setattr(AnalysisWriter, "figure", slow_figure)
    callbacks = "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: 1}}, "
    callbacks += "{class_path: helpers.InterruptAt, init_args: {step: 8}}]"  # epoch 1's 3rd step (6 steps an epoch)
    iris = ["--config", str(CONFIGS / "iris.yaml"), "--trainer.enable_progress_bar", "false"]
    with pytest.raises(SystemExit):
        main(["fit", *iris, "--trainer.max_epochs", "3", "--trainer.callbacks", callbacks])
    assert not FIGURES.pending
    folder = run_dir / "lightning_logs" / "iris" / "version_0"
    pngs = {path.name for path in (folder / "analysis" / "task_separation").glob("*.png")}
    tags = {
        label: {name.split("_epoch_")[0] for name in pngs if name.endswith(f"_epoch_{label}.png")}
        for label in ("init", "000")
    }
    assert {"roles", "over_epochs"} <= tags["000"] and tags["000"] == tags["init"] | {"over_epochs"}, tags
    assert len(pngs) == len(tags["init"]) + len(tags["000"])  # both analyses (before training, epoch 0), and only those
    events = EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    images = sum(len(events.Images(tag)) for tag in events.Tags()["images"] if tag.startswith("task_separation/"))
    assert images == len(pngs)  # each figure also in TensorBoard, written by the training process
    drawers = {int(path.name.rsplit("_", 1)[1]) for path in run_dir.glob("drawn_by_*")}
    assert drawers and (os.getpid() not in drawers) == FIGURES.forks  # drawn in forked processes where they fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system: figures are drawn on a thread")
def test_a_figure_drawn_in_a_forked_process_comes_back_or_fails_in_words():
    from zoo.writer import DrawnElsewhere, FigureWorker

    def draw():
        os.kill(os.getpid(), signal.SIGTERM)  # a stop sent to the run's whole group: the figures in hand still end
        return os.getpid(), os.nice(0)

    drawer, niceness = FigureWorker.draw_in_child(draw)()
    assert drawer != os.getpid() and niceness == min(os.nice(0) + 19, 19)  # on what training leaves idle
    with pytest.raises(DrawnElsewhere) as failure:
        FigureWorker.draw_in_child(lambda: 1 / 0)()
    assert isinstance(failure.value.error, ZeroDivisionError) and "ZeroDivisionError" in failure.value.trace

    class Unpicklable(Exception):  # local: pickle cannot find it by name
        pass

    def unpicklable():
        raise Unpicklable("local error")

    with pytest.raises(DrawnElsewhere, match="Unpicklable: local error"):
        FigureWorker.draw_in_child(unpicklable)()
    with pytest.raises(DrawnElsewhere, match=r"ended \(exit status 3\) before it said what it drew") as failure:
        FigureWorker.draw_in_child(lambda: os._exit(3))()
    assert "exit status 3" in failure.value.trace  # what errors.log keeps


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system: one at a time")
def test_the_worker_starts_a_pass_per_usable_cpu_and_finishes_them_in_order(monkeypatch):
    """Jobs that start work elsewhere run side by side, as many as the usable CPUs (at most most_children)."""
    from zoo.writer import FigureWorker

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    worker, events, release = FigureWorker(), [], threading.Event()
    worker.most_children = 2

    def job(name):
        def start():
            events.append(f"start {name}")
            return lambda: (release.wait(5), events.append(f"finish {name}"))

        return start

    hold = threading.Event()
    worker.submit(lambda: hold.wait(5), on_error=pytest.fail)  # keeps the queue filling while it is held
    for name in "abc":
        worker.submit(job(name), on_error=pytest.fail)
    hold.set()
    deadline = time.monotonic() + 10
    while len(events) < 2 and time.monotonic() < deadline:
        release.wait(0.01)
    assert events == ["start a", "start b"] and worker.pending == 3  # two at once: c waits for a place
    release.set()
    worker.flush()
    assert events == ["start a", "start b", "finish a", "start c", "finish b", "finish c"]
    assert worker.pending == 0


def test_the_figure_thread_ends_once_nothing_is_left_to_draw():
    """A waiting thread that has run torch code slows the training thread's kernels: it must not outlive its work."""
    from zoo.writer import FigureWorker

    worker, drawn, go = FigureWorker(), [], threading.Event()
    worker.submit(lambda: (go.wait(5), drawn.append(1)), on_error=pytest.fail)
    worker.submit(lambda: drawn.append(torch.ones(3).sum().item()), on_error=pytest.fail)
    first = worker.drawing
    assert worker.pending == 2 and first is not None and first.is_alive()  # held by the first figure
    go.set()
    worker.flush()
    assert drawn == [1, 3.0] and worker.pending == 0
    first.join(timeout=5)
    assert not first.is_alive()
    go.clear()
    worker.submit(lambda: (go.wait(5), drawn.append(4)), on_error=pytest.fail)  # later ones start a new thread
    second = worker.drawing
    assert second is not None and second is not first and second.is_alive()
    go.set()
    worker.flush()
    assert drawn[-1] == 4


def test_a_figure_job_that_raises_past_its_handler_loses_no_figure_queued_behind_it(monkeypatch):
    """Only ``Exception`` is a figure's failure; anything else ends the thread, and the next figure still comes."""
    from zoo.writer import FigureWorker

    class Halt(BaseException):
        pass

    raised, drawn, go = [], [], threading.Event()
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_type))

    def halt() -> None:
        go.wait(5)
        raise Halt

    worker = FigureWorker()
    worker.submit(halt, on_error=pytest.fail)
    halted = worker.drawing
    worker.submit(lambda: drawn.append("queued behind it"), on_error=pytest.fail)  # queued while halt runs
    go.set()
    flushing = threading.Thread(target=worker.flush)
    flushing.start()
    flushing.join(timeout=10)
    assert not flushing.is_alive(), "flush waits forever for a thread that died"
    halted.join(timeout=5)  # its exception reaches the hook after the thread handed its queue on
    assert drawn == ["queued behind it"] and raised == [Halt] and worker.pending == 0


def test_a_figure_that_flushes_its_own_worker_is_an_error_not_a_hang():
    from zoo.writer import FigureWorker

    worker, errors = FigureWorker(), []
    worker.submit(worker.flush, on_error=lambda error, trace: errors.append(error))
    flushing = threading.Thread(target=worker.flush)
    flushing.start()
    flushing.join(timeout=10)
    assert not flushing.is_alive(), "a figure waiting for itself"
    assert len(errors) == 1 and "would wait for itself" in str(errors[0])


def test_figures_are_drawn_where_they_are_handed_over_when_no_thread_can_start(monkeypatch):
    """A thread limit (or an exiting interpreter) refuses a new thread: the figure is drawn at once, not lost."""
    from zoo.writer import FigureWorker

    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    worker, drawn = FigureWorker(), []
    worker.submit(lambda: drawn.append(1), on_error=pytest.fail)
    assert drawn == [1] and worker.pending == 0 and worker.drawing is None
    worker.flush()  # returns: nothing is left waiting


def test_a_figure_failing_in_the_background_is_the_analysis_failing(run_dir, monkeypatch, capsys):
    """Drawn after training went on, a broken figure is still reported as the analysis's failure, and counted."""
    from zoo.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("no chart today")

    monkeypatch.setattr("zoo.analyses.task_separation.roles_chart", broken)
    callbacks = "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: 1}}]"
    iris = ["--config", str(CONFIGS / "iris.yaml"), "--trainer.enable_progress_bar", "false"]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *iris, "--trainer.max_epochs", "1", "--trainer.callbacks", callbacks])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert "every attempt of an analysis failed" in err and "no chart today" in err
    log = run_dir / "lightning_logs" / "iris" / "version_0" / "analysis" / "task_separation" / "errors.log"
    assert "RuntimeError: no chart today" in log.read_text()


def test_the_light_accuracy_is_torchmetrics_micro_accuracy_to_the_bit():
    from torchmetrics.classification import MulticlassAccuracy

    from zoo.models.base import Accuracy

    generator = torch.Generator().manual_seed(0)
    ours, theirs = Accuracy(), MulticlassAccuracy(num_classes=7, average="micro")
    for size in (1, 37, 128):
        outputs, targets = torch.randn(size, 7, generator=generator), torch.randint(0, 7, (size,), generator=generator)
        ours.update(outputs, targets)
        theirs.update(outputs, targets)
        assert ours.compute().item() == theirs.compute().item()
