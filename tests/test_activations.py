import re

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.analysis import ImagePrior, activation_analysis, activation_maximization
from zoo.analysis.activations import (
    OUTPUT,
    Maximized,
    Thresholds,
    class_profile,
    compression,
    maximize_together,
    principal_components,
    selectivity,
)
from zoo.analysis.members import activation_analysis_of_members
from zoo.errors import ZooError
from zoo.models import FCNet, Population

NAMES = ["a", "b", "c"]


def hand_built() -> tuple[FCNet, torch.Tensor, torch.Tensor]:
    """Four ReLU units on class-coded inputs: 0 dead, 1 and 2 identical, 3 wired to class c only."""
    torch.manual_seed(0)
    targets = torch.arange(3).repeat(40)
    inputs = F.one_hot(targets, 3).float() + 0.1 * torch.rand(120, 3)
    model = FCNet(hidden=[4], input_shape=(3,), num_outputs=3)
    linear = model.blocks[0][0]
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 1, 1], [1, -1, 0.5], [1, -1, 0.5], [0, 0, 2]]))
        linear.bias.copy_(torch.tensor([-100.0, 2, 2, 0]))
        model.head.weight.copy_(torch.eye(3, 4) + torch.eye(3, 4).roll(3, 1))
    return model, inputs, targets


def test_known_dead_duplicated_and_class_wired_units():
    model, inputs, targets = hand_built()
    result = activation_analysis(model, inputs, targets, NAMES)
    layer = result.layers["fc1"]
    assert layer.never_active == [0] and layer.constant == [] and layer.dead == [0]
    assert layer.correlation[1, 2].item() == pytest.approx(1.0, abs=1e-5)
    assert layer.redundant_pairs == 1  # units 1 and 2; the dead unit correlates with nothing
    assert layer.class_profile[3].argmax().item() == 2
    assert layer.class_profile[3, :2].abs().max() < 0.25 and layer.selectivity[3] > 0.85
    assert layer.report.startswith("fc1: 4 units, judged on 120 samples; 1 dead (25.0%): 1 exactly 0 on every sample")
    assert re.search(r"unit 3: c \(9\d%\); selectivity 0\.\d\d, fires on 100\.0% of samples", layer.report)
    assert layer.firing_rate.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert result.maximization == {}  # tabular inputs: nothing to draw


def test_report_states_and_uses_its_thresholds():
    model, inputs, targets = hand_built()
    strict = Thresholds(redundancy=0.5, compression_tolerance=0.1, class_share=0.4)
    layer = activation_analysis(model, inputs, targets, NAMES, thresholds=strict, data="test").layers["fc1"]
    assert "judged on 120 test samples" in layer.report
    assert "(|r| ≥ 0.5)" in layer.report and "within 0.1 of the full network's accuracy" in layer.report
    assert "classes named hold ≥ 40% of the unit's mean activation" in layer.report
    for line in layer.report.splitlines():
        if line.startswith("  unit "):
            shares = [int(share) for share in re.findall(r"\((\d+)%\)", line)]
            assert shares and min(shares) >= 40, line  # every named class above the stated share
    assert layer.compression.tolerance == 0.1


def test_a_layer_that_cannot_be_compressed_says_so():
    torch.manual_seed(3)
    model = FCNet(hidden=[4], activation="tanh", input_shape=(4,), num_outputs=4)
    with torch.no_grad():
        model.blocks[0][0].weight.copy_(3 * torch.eye(4))  # four independent directions, all needed
        model.head.weight.copy_(torch.eye(4))
    inputs = torch.randn(400, 4)
    targets = model(inputs).argmax(1)
    layer = activation_analysis(model, inputs, targets).layers["fc1"]
    assert layer.compression.smallest_k == 4
    assert "The layer cannot be compressed: only all 4 components keep the metric within 0.005" in layer.report


def graded_layer(width: int, rank: int, samples: int = 2000) -> tuple[FCNet, torch.Tensor, torch.Tensor]:
    """A tanh layer of ``width`` units that is linear in ``rank`` inputs of distinct scales (the rest of it
    constant 0), read by a head that weighs every input alike: all ``rank`` components are needed, and
    only they. The network is right by construction."""
    torch.manual_seed(4)
    scales = 1 + 0.1 * torch.arange(rank)
    model = FCNet(hidden=[width], activation="tanh", input_shape=(rank,), num_outputs=rank)
    with torch.no_grad():
        model.blocks[0][0].weight.copy_(0.01 * torch.eye(width, rank))  # tanh ≈ linear at this scale
        model.blocks[0][0].bias.zero_()
        model.head.weight.copy_(torch.eye(rank, width) / scales[:, None])
        model.head.bias.zero_()
    inputs = torch.randn(samples, rank) * scales
    return model, inputs, model(inputs).argmax(1)


def test_the_smallest_k_is_exact_where_it_is_no_power_of_two():
    """6 units, 5 components needed: every k is scored, 5 found (the grid 1, 2, 4, 6 said 6: incompressible)."""
    model, inputs, targets = graded_layer(width=6, rank=5)
    layer = activation_analysis(model, inputs, targets).layers["fc1"]
    compressed = layer.compression
    assert compressed.k == [1, 2, 3, 4, 5, 6] and compressed.smallest_k == 5
    assert compressed.score[4] == compressed.full == 1.0 and compressed.score[3] < 1.0 - compressed.tolerance
    assert "Projected on its top 5 components the layer keeps the metric" in layer.report
    assert "k tried: every k from 1 to 6." in layer.report


def test_a_wide_layer_is_bisected_to_the_smallest_k():
    model, inputs, targets = graded_layer(width=100, rank=37)
    with model.analysis_mode(), torch.no_grad():
        values = model.hidden_activations(inputs)["fc1"]
        mean, _, axes = principal_components(values)
        compressed = compression(model, inputs, targets, "fc1", mean, axes)
    assert compressed.smallest_k == 37 and 36 in compressed.k  # the k below was tried, and fails
    assert compressed.k == sorted(compressed.k) and compressed.k[-1] == 100
    assert len(compressed.k) <= 8  # log2(100) + 1 scores, not 100
    for k, score in zip(compressed.k, compressed.score):
        assert (score >= compressed.full - compressed.tolerance) == (k >= 37), (k, score)


def test_selective_units_are_ranked_by_what_they_do_not_by_rare_firing():
    """A unit that fires once, for one class, has selectivity 1 but is no detector of that class."""
    targets = torch.arange(2).repeat(100)
    inputs = torch.stack([(targets == 0).float(), torch.zeros(200)], 1)
    inputs[1, 1] = 1.0  # the rare event: sample 1 (class 1) alone has a second feature
    model = FCNet(hidden=[2], input_shape=(2,), num_outputs=2)
    with torch.no_grad():
        model.blocks[0][0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.5]]))
        model.blocks[0][0].bias.copy_(torch.tensor([0.1, 0.0]))
    layer = activation_analysis(model, inputs, targets).layers["fc1"]
    assert layer.selectivity[1] == pytest.approx(1.0) and layer.selectivity[0] < 1
    assert layer.selective_units == [0, 1]  # the strong class-0 detector first
    assert layer.firing_rate[1] == pytest.approx(0.005)
    assert "unit 1: 1 (100%); selectivity 1.00, fires on 0.5% of samples" in layer.report


def test_the_report_lists_only_units_selective_by_its_threshold():
    """hand_built's units 1 and 2 prefer class a weakly (selectivity ≈ 0.26), unit 3 is wired to class c."""
    model, inputs, targets = hand_built()
    layer = activation_analysis(model, inputs, targets, NAMES).layers["fc1"]
    assert layer.selectivity[1] < 0.5 <= layer.selectivity[3]
    assert listed_units(layer.report) == [3] and "Most class-selective units (selectivity ≥ 0.5)" in layer.report
    lenient = activation_analysis(model, inputs, targets, NAMES, thresholds=Thresholds(selectivity=0.2))
    assert sorted(listed_units(lenient.layers["fc1"].report)) == [1, 2, 3]


def listed_units(report: str) -> list[int]:
    return [int(unit) for unit in re.findall(r"^  unit (\d+):", report, re.MULTILINE)]


def test_the_report_says_when_no_unit_is_class_selective():
    torch.manual_seed(5)
    targets = torch.arange(3).repeat(40)
    inputs = F.one_hot(targets, 3).float() + 0.1 * torch.rand(120, 3)
    model = FCNet(hidden=[3], input_shape=(3,), num_outputs=3)
    with torch.no_grad():  # every unit sums the three class features alike, plus a little of one of them
        model.blocks[0][0].weight.copy_(torch.ones(3, 3) + 0.2 * torch.eye(3))
        model.blocks[0][0].bias.zero_()
    layer = activation_analysis(model, inputs, targets, NAMES).layers["fc1"]
    assert layer.dead == [] and layer.selectivity.max() < 0.5
    assert "No unit is class-selective (selectivity ≥ 0.5)." in layer.report
    assert "  unit " not in layer.report


def test_selectivity_is_not_ranked_for_signed_activations():
    torch.manual_seed(0)
    model = FCNet(hidden=[5], activation="tanh", input_shape=(3,), num_outputs=3)
    inputs, targets = torch.randn(90, 3), torch.arange(3).repeat(30)
    layer = activation_analysis(model, inputs, targets).layers["fc1"]
    assert layer.selectivity is None and layer.class_profile is not None and layer.selective_units == []
    assert "Class selectivity is defined for non-negative activations" in layer.report


def test_an_absent_class_has_no_profile_and_no_say_in_selectivity():
    model, inputs, targets = hand_built()
    present = targets != 1  # no sample of class b
    result = activation_analysis(model, inputs[present], targets[present], NAMES)
    layer = result.layers["fc1"]
    assert result.absent_classes == ["b"] and layer.class_profile[:, 1].isnan().all()
    top = layer.class_profile[3, 2]
    rest = layer.class_profile[3, 0]  # the mean of the other *present* class means
    assert layer.selectivity[3].item() == pytest.approx(((top - rest) / (top + rest)).item(), abs=1e-6)


def test_class_profile_and_selectivity_against_loops():
    torch.manual_seed(1)
    activations, targets = torch.rand(50, 6), torch.randint(0, 4, (50,))
    profile = class_profile(activations, targets, 4)
    for unit in range(6):
        for k in range(4):
            assert profile[unit, k].item() == pytest.approx(activations[targets == k, unit].mean().item(), abs=1e-6)
    chosen = selectivity(profile)
    for unit in range(6):
        top = profile[unit].max().item()
        rest = (profile[unit].sum().item() - top) / 3
        assert chosen[unit].item() == pytest.approx((top - rest) / (top + rest), abs=1e-6)
    assert selectivity(torch.zeros(2, 3)).tolist() == [0.0, 0.0]  # undefined → 0


def test_principal_components_and_compression_on_a_rank_two_layer():
    """A layer whose activations span two directions: 2 components hold all variance, k=2 loses nothing."""
    torch.manual_seed(2)
    model = FCNet(hidden=[6], activation="tanh", input_shape=(2,), num_outputs=2)
    with torch.no_grad():
        model.blocks[0][0].weight.copy_(torch.randn(6, 2) * 0.01)  # tanh ≈ linear: activations in a 2-D span
    inputs = torch.randn(400, 2)
    targets = model(inputs).argmax(1)  # the network is right by construction
    layer = activation_analysis(model, inputs, targets).layers["fc1"]
    assert layer.components_99 == 2 and layer.explained_variance[1] > 0.999
    assert layer.compression.metric == "accuracy" and layer.compression.full == 1.0
    assert layer.compression.k == [1, 2, 3, 4, 5, 6] and layer.compression.smallest_k <= 2
    assert layer.compression.score[1] >= 0.995


def test_regression_reports_r2_and_no_class_profile():
    model = FCNet(hidden=[5], input_shape=(4,), num_outputs=2, task="regression")
    x = torch.randn(100, 4)
    layer = activation_analysis(model, x, model(x).detach()).layers["fc1"]
    assert layer.class_profile is None and layer.selectivity is None
    assert layer.compression.metric == "r2" and layer.compression.full == pytest.approx(1.0)


def test_unknown_layer():
    model, inputs, targets = hand_built()
    with pytest.raises(ZooError, match="unknown layer 'fc2'; FCNet's hidden layers are: fc1"):
        activation_analysis(model, inputs, targets, layers=["fc2"])


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_architecture(name):
    kwargs = {
        "FCNet": {"hidden": [16]},
        "ColumNet": {"hidden": [8], "activations": ["relu", "sigmoid"]},
        "SparseNet": {"hidden": [16], "backend": "sparse", "density": 0.3},
    }[name]
    model = zoo.create_model(name, input_shape=(1, 6, 6), num_outputs=3, **kwargs)
    x, y = torch.rand(60, 1, 6, 6), torch.randint(0, 3, (60,))
    result = activation_analysis(model, x, y, NAMES, maximize=2, prior=ImagePrior.fit(x, components=8))
    assert set(result.layers) == set(model.hidden_activations(x))
    assert result.maximization[OUTPUT].shape == (3, 1, 6, 6)
    assert all(0 <= images.min() and images.max() <= 1 for images in result.maximization.values())


def test_class_images_are_classified_as_their_class(mnist):
    """The bar: each class's activation-maximization image is its class with probability ≥ 0.9."""
    torch.manual_seed(0)
    model = FCNet(hidden=[256])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in mnist.train_dataloader():  # one epoch of a small MLP: ~97% accurate
        optimizer.zero_grad()
        model.loss(model(x), y).backward()
        optimizer.step()
    low, high = mnist.input_range
    prior = ImagePrior.fit((mnist.split("train")[0] - low) / (high - low))
    images = activation_maximization(model, OUTPUT, list(range(10)), prior, (low, high))
    assert images.shape == (10, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(low + images * (high - low)), 1)
    assert (probabilities.diagonal() >= 0.9).all(), probabilities.diagonal()
    # strokes on a dark background, not noise: most pixels stay near black, a few are bright
    assert (images < 0.1).float().mean() > 0.5 and (images > 0.5).float().mean() > 0.03


def test_layers_maximized_together_get_the_images_each_gets_alone():
    """One optimization for every layer (a forward a step for all) changes no image beyond rounding."""
    torch.manual_seed(0)
    model = FCNet(hidden=[16, 8], input_shape=(1, 8, 8))
    prior = ImagePrior.fit(torch.rand(200, 1, 8, 8), components=10)
    start = torch.rand(2, 1, 8, 8)
    groups = [
        Maximized("fc1", [3, 5], start),
        Maximized("fc2", [0, 1, 7]),
        Maximized("fc2", []),
        Maximized(OUTPUT, [2, 9]),
    ]
    together = maximize_together(model, groups, prior, (-1.0, 1.0), steps=40)
    for group, images in zip(groups, together):
        layer, units = group.layer, group.units
        alone = activation_maximization(model, layer, units, prior, (-1.0, 1.0), steps=40, start=group.start)
        assert images.shape == alone.shape == (len(group.units), 1, 8, 8)
        assert torch.allclose(images, alone, atol=1e-5), group.layer
    assert not torch.allclose(together[0][0], together[1][0], atol=1e-3)  # the groups did not share their images
    assert maximize_together(model, [], prior) == []


def test_activation_maximization_leaves_the_models_gradients_as_they_were():
    """The images' gradient alone is computed: the weights' doubled the backward and was left in their .grad."""
    torch.manual_seed(0)
    model = FCNet(hidden=[16, 8], input_shape=(1, 8, 8))
    prior = ImagePrior.fit(torch.rand(200, 1, 8, 8), components=10)
    first = model.blocks[0][0].weight  # the first layer's: the objective's gradient flows through it
    first.grad = torch.ones_like(first)  # a training step's, say
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    images = activation_maximization(model, "fc2", [0, 1], prior, steps=5)
    assert images.shape == (2, 1, 8, 8)
    assert torch.equal(first.grad, torch.ones_like(first))
    assert all(parameter.grad is None for parameter in model.parameters() if parameter is not first)
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())


def test_too_few_samples_is_a_clear_error():
    model, inputs, targets = hand_built()
    with pytest.raises(ZooError, match="the activation analysis needs at least two samples"):
        activation_analysis(model, inputs[:1], targets[:1])


def test_maximization_that_could_draw_nothing_is_refused():
    """maximize > 0 without a prior, or on vector inputs, used to return no images without a word."""
    images = zoo.create_model("FCNet", hidden=[8], input_shape=(1, 6, 6), num_outputs=3)
    x, y = torch.rand(30, 1, 6, 6), torch.randint(0, 3, (30,))
    with pytest.raises(ZooError, match=r"maximize=2 needs an image prior: pass prior=ImagePrior\.fit"):
        activation_analysis(images, x, y, maximize=2)
    vectors, inputs, targets = hand_built()
    with pytest.raises(ZooError, match=r"maximize=2: .* inputs are vectors of shape \(3,\); use maximize=0"):
        activation_analysis(vectors, inputs, targets, maximize=2, prior=ImagePrior.fit(x, components=8))
    population = Population("FCNet", size=2, member={"hidden": [8]}, first_seed=0, input_shape=(1, 6, 6), num_outputs=3)
    with pytest.raises(ZooError, match="maximize=1 needs an image prior"):
        activation_analysis_of_members(population, x, y, maximize=1)
    assert activation_analysis(images, x, y).maximization == {}  # the default: none asked, none drawn
