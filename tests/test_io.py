import json
import math

import pytest
import pytorch_lightning as pl
import torch

from zoo.checkpoints import load_model
from zoo.errors import ZooError
from zoo.figures import heatmap, render
from zoo.io import FILE_MODE, atomic_file, encode_json, to_jsonable, write_json, written_together
from zoo.models import FCNet


def test_json_of_tensors_and_non_finite_numbers(tmp_path):
    data = {"matrix": torch.eye(2), "nan": math.nan, "nested": [torch.tensor(3), {"x": 1.5}]}
    path = write_json(tmp_path / "a" / "result.json", data)
    assert json.loads(path.read_text()) == {"matrix": [[1.0, 0.0], [0.0, 1.0]], "nan": None, "nested": [3, {"x": 1.5}]}
    assert to_jsonable((1, 2)) == [1, 2]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "result.json", {"version": 1})

    with pytest.raises(KeyboardInterrupt), atomic_file(path) as handle:
        handle.write(b'{"version": 2, "trunc')
        raise KeyboardInterrupt
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_heatmap_renders_with_labels():
    figure = heatmap(
        torch.rand(3, 4), "title", ["a", "b", "c"], ["w", "x", "y", "z"], xlabel="cols", ylabel="rows", limits=(0, 1)
    )
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["w", "x", "y", "z"]
    assert axes.get_title() == "title" and len(figure.axes) == 2  # the image and its colour bar
    image = render(figure)
    assert image.ndim == 3 and image.shape[2] == 4 and image.std() > 0


LIGHTNING = {"pytorch-lightning_version": pl.__version__}


def test_load_model_round_trip(tmp_path):
    model = FCNet(hidden=[7], input_shape=(3,), num_outputs=2)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), **LIGHTNING}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "model.ckpt")
    loaded = load_model(tmp_path / "model.ckpt")
    assert type(loaded) is FCNet and loaded.hparams["hidden"] == [7]
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training  # eval mode, for analysing and predicting: dropout off, outputs repeatable
    if not torch.cuda.is_available():  # a device the machine lacks is not a corrupt file
        with pytest.raises(ZooError, match="map_location 'cuda' names a device this machine lacks"):
            load_model(tmp_path / "model.ckpt", map_location="cuda")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "checkpoint not found"),
        (b"not a checkpoint at all", "not a readable checkpoint"),
        ({"state_dict": {}}, "not a zoo checkpoint"),
        (
            {"zoo": {"model": "ResNet"}, "hyper_parameters": {}, "state_dict": {}, **LIGHTNING},
            "holds a ResNet, which this version of zoo does not have",
        ),
        (
            {
                "zoo": {"model": "FCNet"},
                "hyper_parameters": {"hidden": [5]},
                "state_dict": FCNet(hidden=[9]).state_dict(),
                **LIGHTNING,
            },
            "its weights do not fit a FCNet",
        ),
    ],
)
def test_bad_checkpoints(tmp_path, content, message):
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ZooError, match=message):
        load_model(path)


class Foreign:
    """An object a checkpoint of zoo's never holds: a safe load refuses it."""


def test_a_foreign_pickle_is_refused_in_whole_words(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"object": Foreign()}, path)
    with pytest.raises(ZooError) as refused:
        load_model(path)
    message = str(refused.value)  # torch's advice runs to a dozen lines; its first sentence says what failed
    assert message.endswith("another kind of file (UnpicklingError: Weights only load failed)"), message


def test_files_written_together_appear_at_once_readable_and_whole(tmp_path):
    old = write_json(tmp_path / "member_000" / "epoch_000.json", {"version": 1})
    paths = [tmp_path / f"member_{index:03d}" / "epoch_000.json" for index in range(3)]
    with written_together():
        for index, path in enumerate(paths):
            write_json(path, {"member": index, "values": torch.arange(3.0)})
        assert json.loads(old.read_text()) == {"version": 1} and not paths[1].exists()  # none in place yet
    for index, path in enumerate(paths):
        assert json.loads(path.read_text()) == {"member": index, "values": [0.0, 1.0, 2.0]}
        assert path.stat().st_mode & 0o777 == FILE_MODE
    assert not [path for path in tmp_path.rglob(".*")]  # no temporary file left

    with pytest.raises(KeyboardInterrupt), written_together():
        write_json(paths[0], {"version": 3})
        raise KeyboardInterrupt
    assert json.loads(paths[0].read_text())["member"] == 0  # a failed block replaces nothing
    assert not [path for path in tmp_path.rglob(".*")]


def test_one_walk_and_the_compact_encoding_hold_the_same_json():
    """A result converted once and written compact reads back as it did converted twice and indented."""
    members = torch.randn(3, 5, 4)
    members[0, 0, 0] = math.nan
    long = torch.randn(1000, dtype=torch.float64)  # checked by torch, not number by number
    long[7] = -math.inf
    result = {"epoch": 2, "summary": {"a": math.inf, "b": 0.1}, "matrix": members, "names": ("x", "y"), "long": long}
    once = to_jsonable(result)
    assert to_jsonable(once) == once
    compact = encode_json(once)
    assert json.loads(compact) == json.loads(json.dumps(to_jsonable(once), indent=1, allow_nan=False))
    assert b"\n" not in compact and b", " not in compact
    back = json.loads(compact)
    assert back["matrix"][0][0][0] is None and back["summary"]["a"] is None and back["long"][7] is None
    assert back["matrix"][2][4] == members[2, 4].tolist() and back["long"][8] == long[8].item()
