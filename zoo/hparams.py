"""TensorBoard's HParams dashboard: one session per run, per member of a population and per sweep trial.

A session is a run folder holding a ``session_start_info`` (its hyper-parameters) and the
``hp/...`` scalars its metric columns read (the last value of each). The experiment (which
columns exist) is written beside the first session. TensorBoard lists the hyper-parameters
marked ``differs`` first, each group by name, and shows the first five of its list: zoo
marks what sessions are compared by (the swept keys, family, epochs, seed, member), so they
open on the left and the rest of the config waits behind a tick.

The analyses' numbers become columns too: a number without ``*`` as it is, a ``*`` number
(one per layer or output pair) as its mean, ``hp/<analysis>/<key with * as mean>``, so
trials of different architectures share their columns.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import socket
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.analyses import Analysis
from zoo.io import write_bytes

PREFIX = "hp/"


def analysis_columns(analyses: Iterable[Analysis]) -> list[str]:
    """The HParams metric tags of every number the analyses declare."""
    return [f"{PREFIX}{analysis.name}/{_column(number.key)}" for analysis in analyses for number in analysis.numbers]


def ordered_columns(headline: Sequence[str], rest: Sequence[str], analyses: Iterable[Analysis]) -> list[str]:
    """Metric columns in the order TensorBoard shows them (the first five ticked): the headline metrics, the
    analyses' numbers they declare ``compared``, then the other metrics and the analyses' other numbers."""
    analyses = list(analyses)
    compared = [
        f"{PREFIX}{analysis.name}/{_column(number.key)}"
        for analysis in analyses
        for number in analysis.numbers
        if number.compared
    ]
    every = [*headline, *compared, *rest, *analysis_columns(analyses)]
    return list(dict.fromkeys(every))


def analysis_values(analysis: Analysis, summary: Mapping[str, float]) -> dict[str, float]:
    """A result's summary as HParams metrics: ``*`` numbers averaged over their layers or pairs."""
    values = {}
    for number in analysis.numbers:
        found = [float(value) for key, value in summary.items() if number.matches(key) and _finite(value)]
        if found:
            values[f"{PREFIX}{analysis.name}/{_column(number.key)}"] = statistics.fmean(found)
    return values


def row_hparams(row: Mapping[str, Any]) -> dict[str, Any]:
    """A study row's hyper-parameters: its swept keys, then family, epochs (trained), seed, member, config."""
    member = row.get("member")
    return {
        **json.loads(row.get("overrides") or "{}"),
        "family": row.get("family"),
        "epochs": row.get("epochs"),
        "seed": row.get("seed"),
        "member": None if member in (None, "") else member,
        "config": Path(str(row.get("config", ""))).stem or None,
    }


ROW_LABELS = ("seed", "member", "batched", "epochs")  # numbers of a row that say which, not how well


def row_metrics(row: Mapping[str, Any], analyses: Iterable[Analysis]) -> dict[str, float]:
    """A study row's numbers as HParams metrics: metrics, time and size as they are, the analyses' averaged."""
    metrics = {
        f"{PREFIX}{key}": float(value)
        for key, value in row.items()
        if "." not in key and key not in ROW_LABELS and isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    for analysis in analyses:
        prefix = f"{analysis.name}."
        summary = {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}
        metrics.update(analysis_values(analysis, summary) if summary else {})
    return metrics


def write_study_experiment(folder: Path, rows: Sequence[Mapping[str, Any]], analyses: Iterable[Analysis]) -> None:
    """The HParams experiment of a study, once for all its sessions, in ``folder`` (its ``runs/``).

    Its columns are every row's hyper-parameters (all the swept keys of every trial entry) and
    metrics; ``differs`` is what does differ between the rows. Written anew each time (the
    previous file removed): TensorBoard reads one experiment per folder.
    """
    from torch.utils.tensorboard import SummaryWriter

    every = [row_hparams(row) for row in rows]
    listed: dict[str, Any] = {}
    for hparams in every:
        listed.update({key: value for key, value in hparams.items() if value is not None and key not in listed})
    differs = [key for key in listed if len({json.dumps(one.get(key)) for one in every}) > 1]
    analyses = list(analyses)
    metric = rows[0].get("metric", "acc")
    headline = [f"{PREFIX}test_{metric}", f"{PREFIX}val_{metric}"]
    rest = list(dict.fromkeys(tag for row in rows for tag in row_metrics(row, ())))
    columns = ordered_columns(headline, rest, analyses)
    for old in folder.glob(f"events.out.tfevents.*{EXPERIMENT_SUFFIX}"):
        old.unlink()
    writer = SummaryWriter(str(folder), filename_suffix=EXPERIMENT_SUFFIX)
    try:
        writer._get_file_writer().add_summary(
            _experiment({key: hparam_value(value) for key, value in listed.items()}, columns, set(differs))
        )
    finally:
        writer.close()


EXPERIMENT_SUFFIX = ".experiment"
SESSION_SUFFIX = ".session"


def latest_summary(folder: Path) -> dict[str, float] | None:
    """The summary of the newest ``epoch_*.json`` an analysis wrote in ``folder`` (by epoch), if any."""
    results = [json.loads(path.read_text()) for path in folder.glob("epoch_*.json")]
    return max(results, key=lambda result: result["epoch"]).get("summary") if results else None


def hparam_value(value: Any) -> int | float | str | bool | None:
    """A value HParams can show: numbers, text and booleans as they are, anything else as JSON text."""
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return json.dumps(value, default=str)


def write_session(
    writer: Any,
    hparams: Mapping[str, Any],
    metrics: Mapping[str, float] = {},
    *,
    columns: Sequence[str] | None = None,
    differs: Iterable[str] = (),
    listed: Mapping[str, Any] | None = None,
    step: int = 0,
) -> None:
    """One HParams session in ``writer``'s folder (a ``SummaryWriter``); ``columns`` also writes the experiment.

    The experiment lists ``listed``'s hyper-parameters (default: this session's); ``differs``
    names those sessions are compared by: TensorBoard shows them first.
    """
    hparams = {key: hparam_value(value) for key, value in hparams.items() if value is not None}
    events = _events(writer)
    if columns is not None:
        listed = {key: hparam_value(value) for key, value in (listed or hparams).items() if value is not None}
        events.add_summary(_experiment(listed, columns, set(differs)))
    events.add_summary(_plugin_summary(SESSION_START, session_start_info=_start(hparams)))
    write_metrics(writer, metrics, step=step)


class SessionFile:
    """A member's HParams session and numbers as one event file in ``folder``, written when the block ends.

    What ``write_session`` and ``write_metrics`` need of a ``SummaryWriter``, for a folder written
    once: torch's writer starts a thread, builds 1,500 histogram bins in Python and waits for its
    thread at each flush, 1.2–1.4 ms a folder against 0.5–0.7 ms here (a session and two numbers,
    measured on 2 CPU cores), paid by every member at the end of each fit and each test. Files are
    written as :func:`~zoo.io.write_bytes` writes them (atomically); inside
    :func:`~zoo.io.written_together`, all with one sync. Named as TensorBoard names its own, with
    :data:`SESSION_SUFFIX`: a torch writer's file in the same folder, second and process never has its name.
    """

    counter = itertools.count()

    def __init__(self, folder: str | Path) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.folder = Path(folder)
        self.events = [Event(wall_time=time.time(), file_version="brain.Event:2")]

    def add_summary(self, summary: Any, global_step: int | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.events.append(Event(wall_time=time.time(), step=global_step or 0, summary=summary))

    def flush(self) -> None:
        """Nothing: the file is written once, when the ``with`` block ends."""

    def __enter__(self) -> SessionFile:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            return
        from tensorboard.summary.writer.record_writer import RecordWriter

        buffer = io.BytesIO()
        records = RecordWriter(buffer)
        for event in self.events:
            records.write(event.SerializeToString())
        stamp = f"{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(self.counter)}"
        write_bytes(self.folder / f"events.out.tfevents.{stamp}{SESSION_SUFFIX}", buffer.getvalue())


def write_metrics(writer: Any, metrics: Mapping[str, float], *, step: int) -> None:
    """The finite ``metrics`` (HParams columns: a number missing rather than NaN) as scalars at ``step``."""
    write_scalars(writer, {tag: float(value) for tag, value in metrics.items() if _finite(value)}, step=step)


def write_scalars(writer: Any, values: Mapping[str, float], *, step: int) -> None:
    """``values`` as scalars at ``step`` in one event (a ``SummaryWriter`` or a :class:`SessionFile`), NaN kept.

    One event of many values reads back as ``add_scalar``'s one value each: for the 1,000 members of
    a population, 13 ms instead of 156 (Lightning's ``log_metrics``).
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    if values:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
        _events(writer).add_summary(summary, step)
    writer.flush()


def _events(writer: Any) -> Any:
    """Where ``writer``'s summaries go: a :class:`SessionFile` itself, or a ``SummaryWriter``'s event file
    (``_get_file_writer``, torch's, reopens the file of a writer Lightning closed when training ended)."""
    return writer if isinstance(writer, SessionFile) else writer._get_file_writer()


SESSION_START, EXPERIMENT = "_hparams_/session_start_info", "_hparams_/experiment"


def _experiment(hparams: Mapping[str, Any], columns: Sequence[str], differs: set[str]) -> Any:
    from tensorboard.plugins.hparams.api_pb2 import DataType, Experiment, HParamInfo, MetricInfo, MetricName

    kinds = {bool: "DATA_TYPE_BOOL", str: "DATA_TYPE_STRING", int: "DATA_TYPE_FLOAT64", float: "DATA_TYPE_FLOAT64"}
    infos = [
        HParamInfo(name=key, type=DataType.Value(kinds[type(value)]), differs=key in differs)
        for key, value in hparams.items()
    ]
    metrics = [MetricInfo(name=MetricName(tag=tag)) for tag in dict.fromkeys(columns)]
    return _plugin_summary(EXPERIMENT, experiment=Experiment(hparam_infos=infos, metric_infos=metrics))


def _start(hparams: Mapping[str, Any]) -> Any:
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionStartInfo

    start = SessionStartInfo(start_time_secs=time.time())
    for key, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, str):
            start.hparams[key].string_value = value
        else:
            start.hparams[key].number_value = value
    return start


def _plugin_summary(tag: str, **content: Any) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    data = HParamsPluginData(version=PLUGIN_DATA_VERSION, **content).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=data))
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])


def _column(key: str) -> str:
    return key.replace("*", "mean")


def _finite(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and abs(number) != float("inf")
