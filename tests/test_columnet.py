import pytest
import torch

from zoo.errors import ZooError
from zoo.models import ColumNet
from zoo.models.layers import ACTIVATIONS


def _float64(model):
    return model.double().eval()


def test_stacked_path_matches_the_per_column_reference():
    torch.manual_seed(0)
    model = _float64(
        ColumNet(hidden=[12, 7, 5], activations=["relu", "tanh", "sigmoid", "gelu"], input_shape=(9,), num_outputs=3)
    )
    assert model.uniform
    x = torch.randn(16, 9, dtype=torch.float64)
    fast_out, fast_hidden = model.forward_with_hidden(x)
    fast_grads = torch.autograd.grad(fast_out.square().sum(), list(model.parameters()))
    model.uniform = False  # the general path, one column after another
    ref_out, ref_hidden = model.forward_with_hidden(x)
    ref_grads = torch.autograd.grad(ref_out.square().sum(), list(model.parameters()))
    assert torch.allclose(fast_out, ref_out, atol=1e-12)
    assert list(fast_hidden) == list(ref_hidden)
    for name in fast_hidden:
        assert torch.allclose(fast_hidden[name], ref_hidden[name], atol=1e-12), name
    for fast, ref in zip(fast_grads, ref_grads):
        assert torch.allclose(fast, ref, atol=1e-12)


def test_hidden_activations_are_named_per_column_and_layer_column_by_column():
    model = ColumNet(hidden=[8, 4], activations=["relu", "elu"], input_shape=(5,), num_outputs=2)
    _, hidden = model.forward_with_hidden(torch.randn(3, 5))
    assert list(hidden) == ["col1_relu/fc1", "col1_relu/fc2", "col2_elu/fc1", "col2_elu/fc2"]
    assert [tuple(a.shape) for a in hidden.values()] == [(3, 8), (3, 4), (3, 8), (3, 4)]
    probe = model.probes["col2_elu/fc1"]  # what an analysis reads: metadata, not the name
    assert (probe.column, probe.layer, probe.units) == ("col2_elu", "fc1", 8)


def test_no_activation_after_the_merge():
    model = ColumNet(hidden=[6], activations=["sigmoid", "tanh"], input_shape=(4,), num_outputs=3).eval()
    outputs, hidden = model.forward_with_hidden(torch.randn(5, 4))
    merged = torch.cat([hidden["col1_sigmoid/fc1"], hidden["col2_tanh/fc1"]], dim=1)
    assert torch.allclose(outputs, model.head(merged))


def test_columns_of_different_widths():
    columns = [{"hidden": [10, 6], "activation": "relu"}, {"hidden": [4], "activation": "silu"}]
    model = ColumNet(columns=columns, input_shape=(1, 28, 28), num_outputs=10)
    assert not model.uniform
    outputs, hidden = model.forward_with_hidden(torch.randn(2, 1, 28, 28))
    assert outputs.shape == (2, 10)
    assert list(hidden) == ["col1_relu/fc1", "col1_relu/fc2", "col2_silu/fc1"]
    assert model.head.in_features == 6 + 4


def test_shorthand_equals_explicit_columns():
    short = ColumNet(hidden=[8, 4], activations=["relu", "tanh"], input_shape=(5,), num_outputs=2)
    explicit = ColumNet(
        columns=[{"hidden": [8, 4], "activation": "relu"}, {"hidden": [8, 4], "activation": "tanh"}],
        input_shape=(5,),
        num_outputs=2,
    )
    assert [p.shape for p in short.parameters()] == [p.shape for p in explicit.parameters()]
    assert short.column_names == explicit.column_names == ["col1_relu", "col2_tanh"]


def test_default_is_three_columns():
    assert ColumNet().column_names == ["col1_relu", "col2_tanh", "col3_sigmoid"]


def test_every_activation_in_one_network():
    model = ColumNet(hidden=[6], activations=list(ACTIVATIONS), input_shape=(4,), num_outputs=2)
    assert len(model.columns) == len(ACTIVATIONS) >= 9
    assert torch.isfinite(model(torch.randn(3, 4))).all()


def test_a_full_rank_columnet_is_the_columnet_it_always_was():
    """``rank`` absent or all null builds the same weights (old checkpoints load) and the batched path."""
    kwargs = {"hidden": [8, 4], "activations": ["relu", "tanh"], "input_shape": (5,), "num_outputs": 2}
    plain, nulls = ColumNet(**kwargs), ColumNet(rank=[None, [None, None]], **kwargs)
    assert plain.uniform and nulls.uniform
    assert {key: value.shape for key, value in plain.state_dict().items()} == {
        key: value.shape for key, value in nulls.state_dict().items()
    }
    low = ColumNet(rank=[[3, None], [None, 2]], **kwargs)
    assert not low.uniform  # a factorized layer goes through the per-column path
    assert isinstance(low.columns[0][1][0], torch.nn.Sequential) and low.project[1].out_features == 2
    assert low.head.in_features == 4 + 2
    assert low(torch.randn(3, 5)).shape == (3, 2)


def test_dense_parameter_count():
    model = ColumNet(hidden=[8], activations=["relu", "tanh"], input_shape=(5,), num_outputs=3)
    expected = 2 * (5 * 8 + 8) + (16 * 3 + 3)
    assert model.parameter_counts() == {"stored": expected, "nonzero": expected}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": []}, "ColumNet needs at least one column; got an empty list"),
        ({"activations": []}, "ColumNet needs at least one column"),
        (
            {"columns": [{"hidden": [4], "activation": "relu"}], "hidden": [4]},
            "give either model.columns or the shorthand",
        ),
        (
            {"columns": [{"hidden": [4, -1], "activation": "relu"}]},
            r"model.columns\[1\].hidden must be positive integers, got \[4, -1\]",
        ),
        (
            {"columns": [{"hidden": [], "activation": "relu"}]},
            r"model.columns\[1\].hidden must list at least one width",
        ),
        ({"activations": ["relu", "softplus"]}, "unknown activation 'softplus'; accepted: relu, relu6"),
        ({"hidden": [0]}, r"model.hidden must be positive integers, got \[0\]"),
        ({"hidden": [4, 3], "activations": ["relu"], "rank": [[2]]}, r"model.rank must give per column null.*\[2\]"),
        ({"hidden": [4], "activations": ["relu", "tanh"], "rank": [[2]]}, r"columns of \[1, 1\] layers"),
        ({"hidden": [4], "activations": ["relu"], "rank": [[0]]}, r"one positive integer or null per hidden layer"),
        ({"hidden": [4], "activations": ["relu"], "rank": [3]}, r"got \[3\]"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ZooError, match=message):
        ColumNet(**kwargs)
