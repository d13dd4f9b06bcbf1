import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICES

import zoo
from zoo.analysis import task_separation
from zoo.analysis.reference import attribution_loop, task_gradients_loop
from zoo.analysis.task_separation import LayerRoles
from zoo.errors import ZooError
from zoo.models import FCNet


def two_disjoint_subnetworks() -> FCNet:
    """x0,x1 → neurons 0,1 → output 0;  x2,x3 → neurons 2,3 → output 1; nothing crosses over."""
    torch.manual_seed(0)
    model = FCNet(hidden=[4], activation="tanh", input_shape=(4,), num_outputs=2, task="regression")
    block = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2))
    with torch.no_grad():
        linear = model.blocks[0][0]
        linear.weight.mul_(block)
        model.head.weight.mul_(torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]]))
    return model


def test_disjoint_subnetworks_separate_perfectly():
    model = two_disjoint_subnetworks()
    x = torch.rand(200, 4) * 2 - 1
    y = torch.stack([x[:, 0] * x[:, 1], x[:, 2] * x[:, 3]], 1)
    result = task_separation(model, x, y, output_names=["x0*x1", "x2*x3"])
    attribution = result.attribution["fc1"]
    assert (attribution[:2, 1] == 0).all() and (attribution[2:, 0] == 0).all()  # block-diagonal
    assert (attribution[:2, 0] > 0).all() and (attribution[2:, 1] > 0).all()
    assert result.roles["fc1"].mono == 4 and result.roles["fc1"].mono_per_output == [2, 2]
    assert result.orthogonality[0, 1] == 0 and result.orthogonal_fraction == 1.0
    assert result.interference[0, 1].abs() < 1e-6  # no parameter receives gradient from both tasks
    for layer, matrix in result.interference_per_layer.items():
        assert matrix[0, 1].abs() < 1e-6, layer
    assert result.mean_interference == pytest.approx(0, abs=1e-6) and result.conflict_fraction == 0


def cosine(a, b):
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_quantity_matches_the_per_sample_loop(task):
    torch.manual_seed(1)
    model = FCNet(hidden=[6, 5], activation="tanh", input_shape=(4,), num_outputs=3, task=task)
    x = torch.randn(23, 4)
    y = torch.randint(0, 3, (23,)) if task == "classification" else torch.randn(23, 3)
    result = task_separation(model, x, y, chunk_size=5)  # several chunks: normalization must stay global

    gradients = task_gradients_loop(model, x, y)
    flat = torch.cat([g.flatten(1) for g in gradients.values()], 1)
    for k, j in itertools.product(range(3), repeat=2):
        assert result.interference[k, j].item() == pytest.approx(cosine(flat[k], flat[j]), abs=1e-5)
    first_layer = torch.cat([gradients["blocks.0.0.weight"].flatten(1), gradients["blocks.0.0.bias"]], 1)
    assert result.interference_per_layer["blocks.0.0"][0, 2].item() == pytest.approx(
        cosine(first_layer[0], first_layer[2]), abs=1e-5
    )
    pairs = [flat[k] @ flat[j] for k, j in [(0, 1), (0, 2), (1, 2)]]
    assert result.conflict_fraction == pytest.approx(sum(p < 0 for p in pairs).item() / 3)

    attribution = attribution_loop(model, x)
    for layer in ("fc1", "fc2"):
        assert torch.allclose(result.attribution[layer], attribution[layer], atol=1e-6)
        for neuron in range(len(attribution[layer])):
            row = attribution[layer][neuron]
            assert torch.allclose(result.attribution_share[layer][neuron], row / row.sum(), atol=1e-5)
    everything = torch.cat([attribution["fc1"], attribution["fc2"]])
    assert result.orthogonality[0, 2].item() == pytest.approx(cosine(everything[:, 0], everything[:, 2]), abs=1e-5)


def test_roles_from_a_known_attribution():
    from zoo.analysis.task_separation import neuron_roles

    attribution = {
        "a": torch.tensor([[1.0, 0.0], [0.95, 0.05], [0.5, 0.5], [0.0, 0.0]]),
        "b": torch.tensor([[0.0, 2.0], [1e-9, 0.0]]),
    }
    dead = {"a": torch.tensor([False, False, False, True]), "b": torch.tensor([False, True])}
    roles = neuron_roles(attribution, dead, threshold=0.9)
    a, b = roles["a"], roles["b"]
    assert (a.units, a.mono, a.shared, a.dead, a.mono_per_output) == (4, 2, 1, 1, [2, 0])
    assert (b.units, b.mono, b.shared, b.dead, b.mono_per_output) == (2, 1, 0, 1, [0, 1])
    assert a.largest_share.tolist() == pytest.approx([1.0, 0.95, 0.5])  # live neurons only
    # specialization: mean of (K·max share − 1)/(K − 1) = mean(1, 0.9, 0) over a's live neurons
    assert a.specialization == pytest.approx((1 + 0.9 + 0) / 3)
    assert b.specialization == 1.0 and (a + b).mono_fraction == 0.5


def test_columnet_roles_are_summed_per_column_from_probe_metadata():
    torch.manual_seed(0)
    model = zoo.create_model("ColumNet", hidden=[6, 4], activations=["relu", "tanh"], input_shape=(4,), num_outputs=3)
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    result = task_separation(model, x, y)
    assert set(result.column_roles) == {"col1_relu", "col2_tanh"}
    for column, summed in result.column_roles.items():
        layers = [result.roles[name] for name, probe in model.probes.items() if probe.column == column]
        assert summed.units == 10 == sum(roles.units for roles in layers)
        assert summed.mono_per_output == [sum(counts) for counts in zip(*(roles.mono_per_output for roles in layers))]
        assert summed.dead == sum(roles.dead for roles in layers)


def same_neurons_opposite_effects() -> tuple[FCNet, torch.Tensor, torch.Tensor]:
    """Two ReLU neurons with equal mean activation; y0 = h1 + h2, y1 = h1 − h2.

    Both outputs draw on both neurons equally (magnitude columns identical: cosine 1), but
    the mean signed contributions are (m, m) and (m, −m): cosine exactly 0.
    """
    model = FCNet(hidden=[2], input_shape=(2,), num_outputs=2, task="regression")
    with torch.no_grad():
        model.blocks[0][0].weight.copy_(torch.eye(2))
        model.blocks[0][0].bias.zero_()
        model.head.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
        model.head.bias.zero_()
    x = torch.rand(50, 2)
    x = torch.cat([x, x.flip(1)])  # every sample with its two inputs swapped: both neurons' means equal
    return model, x, model(x).detach()


def test_signed_orthogonality_of_known_networks():
    model, x, y = same_neurons_opposite_effects()
    result = task_separation(model, x, y, output_names=["sum", "difference"])
    assert result.orthogonality[0, 1].item() == pytest.approx(1.0, abs=1e-6)  # the same neurons, same amounts
    assert result.signed_orthogonality[0, 1].item() == pytest.approx(0.0, abs=1e-6)  # opposite effects cancel
    assert result.orthogonal_fraction == 0.0 and result.signed_orthogonal_fraction == 1.0
    assert result.pairs == [
        {
            "outputs": ["sum", "difference"],
            "orthogonality": pytest.approx(1.0, abs=1e-6),
            "signed_orthogonality": pytest.approx(0.0, abs=1e-6),
            "interference": pytest.approx(result.interference[0, 1].item()),
        }
    ]
    summary = result.summary()  # with two outputs the cosines themselves, not only a 0/1 fraction
    assert summary["pair/sum_difference/signed_orthogonality"] == pytest.approx(0.0, abs=1e-6)

    model = two_disjoint_subnetworks()  # disjoint neurons: orthogonal under both definitions
    x = torch.rand(100, 4) * 2 - 1
    separate = task_separation(model, x, model(x).detach())
    assert separate.orthogonality[0, 1] == 0 and separate.signed_orthogonality[0, 1] == 0
    flipped = FCNet(hidden=[2], input_shape=(2,), num_outputs=2, task="regression")
    flipped.load_state_dict(same_neurons_opposite_effects()[0].state_dict())
    with torch.no_grad():
        flipped.head.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))  # y1 = −y0
    opposite = task_separation(flipped, x[:, :2].abs(), flipped(x[:, :2].abs()).detach())
    assert opposite.signed_orthogonality[0, 1].item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("activation", "bias", "kind"),
    [("relu", -100.0, "never"), ("elu", -100.0, "constant"), ("gelu", -100.0, "never"),
     ("silu", -100.0, "never"), ("tanh", 100.0, "constant"), ("sigmoid", 100.0, "constant")],
)  # fmt: skip
def test_both_analyses_find_the_same_dead_units(activation, bias, kind):
    """One definition of dead for both analyses, for every activation, on a hand-built layer."""
    from zoo.analysis import activation_analysis

    torch.manual_seed(0)
    model = FCNet(hidden=[4], activation=activation, input_shape=(3,), num_outputs=3)
    with torch.no_grad():
        model.blocks[0][0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]))
        model.blocks[0][0].bias.copy_(torch.tensor([0.0, 0, bias, 0]))  # unit 2 saturates on inputs in [0, 1]
    x, y = torch.rand(200, 3), torch.arange(3).repeat(67)[:200]
    separation = task_separation(model, x, y)
    layer = activation_analysis(model, x, y).layers["fc1"]
    assert layer.dead == [2] and separation.roles["fc1"].dead == 1
    assert (layer.never_active if kind == "never" else layer.constant) == [2]


def test_a_class_absent_from_the_data_is_named_not_an_error():
    torch.manual_seed(0)
    model = FCNet(hidden=[8], input_shape=(4,), num_outputs=3)
    x, y = torch.randn(40, 4), torch.tensor([0, 1] * 20)  # no sample of class 2
    result = task_separation(model, x, y, output_names=["a", "b", "c"])
    assert result.absent_outputs == ["c"]
    assert result.interference[2].isnan().all() and result.interference[:, 2].isnan().all()
    assert result.mean_interference == pytest.approx(result.interference[0, 1].item())  # the one present pair
    assert result.conflict_fraction == float(result.interference[0, 1] < 0)


def test_dead_relu_neuron_is_found():
    model = FCNet(hidden=[3], input_shape=(2,), num_outputs=2)
    with torch.no_grad():
        model.blocks[0][0].bias[1] = -100.0  # never active on inputs in [0, 1]
    x, y = torch.rand(50, 2), torch.randint(0, 2, (50,))
    result = task_separation(model, x, y)
    assert result.roles["fc1"].dead == 1
    assert (result.attribution["fc1"][1] == 0).all()


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_architecture(name):
    kwargs = {
        "FCNet": {"hidden": [16]},
        "ColumNet": {"hidden": [8], "activations": ["relu", "sigmoid"]},
        "SparseNet": {"hidden": [16, 8], "backend": "sparse", "density": 0.3},
    }[name]
    model = zoo.create_model(name, input_shape=(4,), num_outputs=3, **kwargs)
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    result = task_separation(model, x, y, output_names=["a", "b", "c"])
    assert result.interference.shape == (3, 3) and torch.allclose(
        result.interference.diagonal(), torch.ones(3), atol=1e-5
    )
    assert set(result.attribution) == set(model.hidden_activations(x))
    if name == "ColumNet":
        assert set(result.column_roles) == {"col1_relu", "col2_sigmoid"}
    assert model.training  # analysis_mode restored it


def test_unknown_layer_is_a_clear_error():
    model = FCNet(hidden=[4, 3], input_shape=(2,), num_outputs=2)
    with pytest.raises(ZooError, match="unknown layer 'fc9'; FCNet's hidden layers are: fc1, fc2"):
        task_separation(model, torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), layers=["fc9"])


def test_inside_inference_mode():
    """Lightning runs evaluation hooks under inference mode; the analysis must still get gradients."""
    model = FCNet(hidden=[4], input_shape=(2,), num_outputs=2)
    x, y = torch.randn(10, 2), torch.randint(0, 2, (10,))
    with torch.inference_mode():
        result = task_separation(model, x.clone(), y.clone())
    assert result.attribution["fc1"].sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_models_device(device, mnist):
    model = FCNet(hidden=[32]).to(device)
    x, y = mnist.split("val")
    result = task_separation(model, x[:300], y[:300], output_names=mnist.output_names)
    assert result.interference.device.type == device
    assert result.interference.shape == (10, 10) and len(result.roles["fc1"].mono_per_output) == 10


def test_no_samples_is_a_clear_error():
    model = FCNet(hidden=[4], input_shape=(2,), num_outputs=2)
    with pytest.raises(ZooError, match="task separation needs at least one sample; got none"):
        task_separation(model, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))


def test_dead_units_of_several_layers_judged_at_once_are_each_layers_own():
    """A population's members are judged together (leading dimension), each on its own largest variance."""
    from zoo.analysis.units import dead_mask, dead_units

    torch.manual_seed(0)
    layers = torch.randn(3, 50, 5) * torch.tensor([1.0, 1e3, 1e-3])[:, None, None]  # very different scales
    layers[0, :, 1] = 0.0  # never active
    layers[1, :, 3] = 2.5  # constant
    layers[2, :, 4] *= 1e-4  # varies, but too little beside its layer's largest
    together = dead_mask(layers)
    assert together.tolist() == [[False, True, False, False, False], [False, False, False, True, False],
                                 [False, False, False, False, True]]  # fmt: skip
    for layer, mask in zip(layers, together):
        assert mask.nonzero().flatten().tolist() == dead_units(layer).all


def test_a_layers_roles_print_as_their_counts():
    """A console shows a layer's roles in one line, not every live neuron's largest share."""
    roles = LayerRoles(units=1024, dead=12, mono_per_output=[3, 4, 5], largest_share=torch.full((1012,), 0.5))
    assert repr(roles) == "LayerRoles(units=1024, dead=12, mono=12 [3, 4, 5], shared=1000, specialization=0.250)"


def test_one_output_draws_no_pairs_over_epochs_and_warns_nothing():
    """With one output there is no pair: the figure was three empty panels and a matplotlib legend warning a pass."""
    import warnings

    from zoo.analyses import get_analysis
    from zoo.io import to_jsonable

    torch.manual_seed(0)
    model = FCNet(hidden=[6], input_shape=(4,), num_outputs=1, task="regression")
    inputs = torch.randn(32, 4)
    result = task_separation(model, inputs, inputs[:, :1] * inputs[:, 1:2])
    analysis = get_analysis("task_separation")
    history = [{"epoch": epoch, **to_jsonable(result)} for epoch in (0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = analysis.figures_for(result, history=history)
    assert result.pairs == [] and "over_epochs" not in drawn
    assert {"interference", "roles", "attribution/fc1"} <= set(drawn)
