"""What TensorBoard shows of a population, read back from the event files it reads."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from zoo.cli import main
from zoo.hparams import SessionFile, write_metrics, write_scalars, write_session

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
ANALYSIS = "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: null, max_samples: 200}}]"
MULTIMULT = [
    "--config", str(CONFIGS / "multimult.yaml"), "--trainer.callbacks", ANALYSIS, *QUIET,
    "--data.num_samples", "400", "--trainer.max_epochs", "1", "--data.shuffle_seed", "0",
]  # fmt: skip


def hparams_of(folder: Path) -> dict[str, plugin_data_pb2.HParamsPluginData]:
    """Every run's HParams records under ``folder``, by run and tag."""
    runs = EventMultiplexer()
    runs.AddRunsFromDirectory(str(folder))
    runs.Reload()
    found = {}
    for run, tags in runs.PluginRunToTagToContent("hparams").items():
        for tag, content in tags.items():
            found[(run, tag)] = plugin_data_pb2.HParamsPluginData.FromString(content)
    return found, runs


def test_a_population_at_a_glance(run_dir):
    """A margin chart per metric, members in one chart, one HParams session per member with its analysis numbers."""
    cli = main(["fit", *MULTIMULT, "--population", "3", "--seed_everything", "4"])
    main(["test", *MULTIMULT, "--population", "3", "--ckpt_path", "best"])  # a new run folder: a session of its own
    folder = Path(cli.trainer.log_dir)
    found, runs = hparams_of(folder)
    layout_events = runs.Tensors(".", "custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(layout_events[0].tensor_proto.string_val[0])
    charts = {chart.title: chart for category in layout.category for chart in category.chart}
    band = charts["val r2: mean, band min–max of the members"].margin.series[0]
    assert (band.value, band.lower, band.upper) == ("val/r2", "val/r2_min", "val/r2_max")
    assert charts["val r2: each member"].multiline.tag == [r"^members/val_r2/\d+$"]
    scalars = runs.Runs()["."]["scalars"]
    assert {band.value, band.lower, band.upper} <= set(scalars)
    std_band = charts["val r2: mean, band ± std of the members"].margin.series[0]
    assert (std_band.lower, std_band.upper) == ("val/r2_mean_minus_std", "val/r2_mean_plus_std")
    last = {tag: runs.Scalars(".", tag)[-1].value for tag in ("val/r2", std_band.lower, std_band.upper)}
    members = torch.tensor([runs.Scalars(".", f"members/val_r2/{index:03d}")[-1].value for index in range(3)])
    assert last["val/r2"] == pytest.approx(members.mean().item(), abs=1e-6)
    assert last[std_band.upper] - last["val/r2"] == pytest.approx(members.std().item(), abs=1e-6)  # n − 1
    assert last["val/r2"] - last[std_band.lower] == pytest.approx(members.std().item(), abs=1e-6)
    assert charts["loss: train, val (a run each: two colours)"].multiline.tag == ["^loss$"]
    for stage, tag in (("val", "loss"), ("val", "r2"), ("train", "r2")):  # a run per stage: a colour per stage
        copied = [(event.step, event.value) for event in runs.Scalars(stage, tag)]
        assert copied == [(event.step, event.value) for event in runs.Scalars(".", f"{stage}/{tag}")]

    experiment = found[(".", "_hparams_/experiment")].experiment
    columns = [info.name.tag for info in experiment.metric_infos]
    expected = {"hp/best_val_loss", "hp/val_r2", "hp/test_r2", "hp/params_nonzero", "hp/params_nonzero_population"}
    assert expected <= set(columns)
    shown = ["hp/val_r2", "hp/test_r2", "hp/task_separation/mean_interference"]  # TensorBoard ticks the first five
    assert columns[:3] == shown
    assert "hp/task_separation/mean_interference" in columns and "hp/task_separation/pair/mean/orthogonality" in columns
    differs = [info.name for info in experiment.hparam_infos if info.differs]
    assert differs == ["family", "epochs", "seed", "member"]  # TensorBoard shows these first
    sessions = {run: data.session_start_info for (run, tag), data in found.items() if tag.endswith("start_info")}
    members = [f"member_{i:03d}" for i in range(3)]
    tested = [f"test/version_0/{member}" for member in members]  # `zoo test` writes a run folder inside the run's
    assert set(sessions) == {".", *members, "test/version_0", *tested}
    assert [sessions[f"member_{i:03d}"].hparams["seed"].number_value for i in range(3)] == [4, 5, 6]
    assert sessions["member_001"].hparams["family"].string_value == "FCNet"
    assert sessions["."].hparams["epochs"].number_value == 1
    recorded = sessions["."].hparams  # the model as built: what the data linked into it, not the config's defaults
    assert recorded["model.input_shape"].string_value == "[4]" and recorded["model.num_outputs"].number_value == 2
    assert recorded["model.task"].string_value == "regression"

    per_member = cli.model.member(0).parameter_counts()["nonzero"]
    last = {run: {tag: runs.Scalars(run, tag)[-1].value for tag in runs.Runs()[run]["scalars"]} for run in sessions}
    assert last["."]["hp/params_nonzero"] == per_member
    assert last["."]["hp/params_nonzero_population"] == 3 * per_member
    assert all(last[f"member_{i:03d}"]["hp/params_nonzero"] == per_member for i in range(3))
    for index in range(3):
        member = last[f"member_{index:03d}"]
        assert member["hp/val_r2"] == pytest.approx(runs.Scalars(".", f"members/val_r2/{index:03d}")[-1].value)
        test = runs.Scalars("test/version_0", f"members/test_r2/{index:03d}")[-1].value
        assert last[tested[index]]["hp/test_r2"] == pytest.approx(test)
        assert -1 <= member["hp/task_separation/mean_interference"] <= 1
    mean = sum(last[f"member_{i:03d}"]["hp/task_separation/mean_interference"] for i in range(3)) / 3
    assert last["."]["hp/task_separation/mean_interference"] == pytest.approx(mean, abs=1e-6)


def test_a_session_file_is_one_whole_event_file_or_none(tmp_path):
    """A member's session is written at once (atomically, 0644) and read back as TensorBoard's own writer's."""
    with SessionFile(tmp_path / "member_000") as writer:
        write_session(writer, {"seed": 4, "family": "FCNet"}, {"hp/val_acc": 0.75}, step=3)
    (written,) = (tmp_path / "member_000").iterdir()
    assert written.name.startswith("events.out.tfevents.") and written.name.endswith(".session")
    assert written.stat().st_mode & 0o777 == 0o644
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    runs.Reload()
    (event,) = runs.Scalars("member_000", "hp/val_acc")
    assert (event.step, event.value) == (3, 0.75)
    content = runs.SummaryMetadata("member_000", "_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["seed"].number_value == 4 and start.hparams["family"].string_value == "FCNet"
    with pytest.raises(RuntimeError), SessionFile(tmp_path / "member_001") as writer:
        write_metrics(writer, {"hp/val_acc": 0.5}, step=0)
        raise RuntimeError("the fit failed here")
    assert not any((tmp_path / "member_001").glob("events.*"))


def test_a_members_nan_reaches_its_curve_and_no_hparams_column(tmp_path):
    """write_scalars keeps NaN (a member's curve shows where it diverged); write_metrics leaves it out of HParams."""
    with SessionFile(tmp_path / "curves") as writer:
        write_scalars(writer, {"members/val_r2/000": float("nan"), "members/val_r2/001": 0.5}, step=7)
    with SessionFile(tmp_path / "columns") as writer:
        write_metrics(writer, {"hp/val_r2": float("nan"), "hp/val_mse": 0.25}, step=7)
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    runs.Reload()
    (diverged,) = runs.Scalars("curves", "members/val_r2/000")
    assert diverged.step == 7 and math.isnan(diverged.value)
    assert runs.Scalars("curves", "members/val_r2/001")[0].value == 0.5
    assert runs.Runs()["columns"]["scalars"] == ["hp/val_mse"]
