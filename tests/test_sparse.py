import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICES, TORCH_SPARSE

from zoo.errors import ZooError
from zoo.models import SparseLinear, SparseNet
from zoo.models.sparse import CSRLinearFunction, erdos_renyi_density, random_connectivity, torch_sparse_available

BACKENDS = ["masked", "sparse", TORCH_SPARSE]


def same_layer(reference: SparseLinear, backend: str) -> SparseLinear:
    """A layer of another backend holding exactly the reference's weights."""
    layer = SparseLinear(reference.in_features, reference.out_features, reference.density, backend, seed=0).to(
        reference.bias
    )
    mask = reference.connectivity()
    assert torch.equal(layer.connectivity(), mask)
    with torch.no_grad():
        layer.bias.copy_(reference.bias)
        if backend == "masked":
            layer.weight.copy_(reference.dense_weight())
        else:
            layer.values.copy_(reference.dense_weight()[mask])
    return layer


def test_connectivity_is_exact_and_seeded():
    mask = random_connectivity(200, 50, 0.05, seed=7)
    assert mask.shape == (50, 200) and int(mask.sum()) == 500
    assert torch.equal(mask, random_connectivity(200, 50, 0.05, seed=7))
    assert not torch.equal(mask, random_connectivity(200, 50, 0.05, seed=8))
    assert int(random_connectivity(10, 10, 1e-6, seed=0).sum()) == 1  # never empty


def test_initialization_is_scaled_to_each_units_fan_in():
    torch.manual_seed(0)
    layer = SparseLinear(2000, 300, 0.02, "masked")
    fan_in = layer.mask.sum(1).double()
    weight = layer.dense_weight().detach().double()
    assert (weight.abs().max(1).values <= fan_in.rsqrt()).all()
    # U(-1/√fan_in, 1/√fan_in) has variance 1/(3 fan_in): each unit's summed variance is 1/3
    summed_variance = (weight.square().sum(1)).mean()
    assert summed_variance == pytest.approx(1 / 3, rel=0.05)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_backends_agree_on_outputs_and_gradients(backend, device, layout):
    """Column-major inputs and output gradients are what a CSR layer hands to the next one (its output is (W xᵀ)ᵀ)."""
    torch.manual_seed(0)
    reference = SparseLinear(120, 70, 0.08, "masked").double().to(device)
    other = same_layer(reference, backend)
    x = torch.randn(33, 120, dtype=torch.float64, device=device)
    upstream = torch.randn(33, 70, dtype=torch.float64, device=device)
    if layout == "column-major":
        x, upstream = x.t().contiguous().t(), upstream.t().contiguous().t()
        assert not x.is_contiguous() and not upstream.is_contiguous()
    x.requires_grad_()

    (ref_x,) = torch.autograd.grad((reference(x) * upstream).sum(), x)
    ref_w, ref_b = torch.autograd.grad((reference(x) * upstream).sum(), [reference.weight, reference.bias])
    out = other(x)
    grads = torch.autograd.grad((out * upstream).sum(), [x, other.values, other.bias])
    assert torch.allclose(out, reference(x), atol=1e-12)
    assert torch.allclose(grads[0], ref_x, atol=1e-12)
    assert torch.allclose(grads[1], ref_w[reference.mask], atol=1e-12)
    assert torch.allclose(grads[2], ref_b, atol=1e-12)


def test_masked_gradient_is_zero_off_the_mask():
    layer = SparseLinear(30, 20, 0.1, "masked")
    layer(torch.randn(8, 30)).sum().backward()
    assert (layer.weight.grad[~layer.mask] == 0).all()
    assert (layer.weight.grad[layer.mask] != 0).any()


def test_csr_function_passes_gradcheck():
    layer = SparseLinear(25, 15, 0.2, "sparse").double()
    x = torch.randn(4, 25, dtype=torch.float64, requires_grad=True)
    values = layer.values.detach().clone().requires_grad_()
    buffers = (layer.crow, layer.cols, layer.crow_t, layer.rows, layer.transposed)
    assert torch.autograd.gradcheck(lambda x, v: CSRLinearFunction.apply(x, v, *buffers), (x, values))


@pytest.mark.parametrize("backend", BACKENDS)
def test_off_mask_weights_never_change_in_training(backend):
    torch.manual_seed(0)
    model = SparseNet(hidden=[40, 30], density=0.1, backend=backend, input_shape=(12,), num_outputs=3)
    before = [copy.deepcopy(layer.connectivity()) for layer in model.sparse_layers]
    initial = [layer.dense_weight().detach().clone() for layer in model.sparse_layers]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    x, y = torch.randn(64, 12), torch.randint(0, 3, (64,))
    for _ in range(20):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    for layer, mask, start in zip(model.sparse_layers, before, initial):
        weight = layer.dense_weight().detach()
        assert torch.equal(layer.connectivity(), mask)
        assert (weight[~mask] == 0).all()
        assert not torch.equal(weight[mask], start[mask])  # the connected weights did learn


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparsenet_counts_only_real_connections(backend):
    model = SparseNet(hidden=[100, 50], density=0.1, backend=backend, input_shape=(1, 28, 28), num_outputs=10)
    expected = round(0.1 * 784 * 100) + 100 + round(0.1 * 100 * 50) + 50 + (50 * 10 + 10)
    assert model.parameter_counts()["nonzero"] == expected
    if backend == "masked":
        assert model.parameter_counts()["stored"] == 784 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10


def test_erdos_renyi_density_per_layer():
    model = SparseNet(hidden=[300, 100], epsilon=10, input_shape=(1, 28, 28), num_outputs=10)
    densities = [layer.density for layer in model.sparse_layers]
    assert densities == pytest.approx([erdos_renyi_density(10, 784, 300), erdos_renyi_density(10, 300, 100)])
    assert densities[0] == pytest.approx(10 * (784 + 300) / (784 * 300))


def test_sparse_output_layer():
    model = SparseNet(hidden=[20], density=0.5, sparse_output=True, input_shape=(6,), num_outputs=4)
    assert isinstance(model.head, SparseLinear)
    assert model(torch.randn(2, 6)).shape == (2, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"density": 0.0}, r"model.density of layer 1 \(784→1000\) must lie in \(0, 1\]; it is 0"),
        ({"density": 1.5}, r"must lie in \(0, 1\]; it is 1.5"),
        ({"epsilon": 600}, r"model.density of layer 1 \(784→1000\) must lie in \(0, 1\]; epsilon 600 gives 1.365"),
        ({"epsilon": -1}, "model.epsilon must be positive, got -1"),
        ({"density": 0.1, "epsilon": 1}, "give either model.density or model.epsilon, not both"),
        ({"backend": "cusparse"}, "unknown sparse backend 'cusparse'; accepted: masked, sparse, torch_sparse"),
        ({"hidden": [10, 0]}, r"model.hidden must be positive integers, got \[10, 0\]"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ZooError, match=message):
        SparseNet(**kwargs)


def test_torch_sparse_backend_is_optional():
    if torch_sparse_available():
        assert SparseLinear(10, 10, 0.5, "torch_sparse")(torch.randn(2, 10)).shape == (2, 10)
    else:
        hint = r"needs the torch-sparse package.*pip install --no-build-isolation -e '\.\[sparse\]'"
        with pytest.raises(ZooError, match=hint):
            SparseLinear(10, 10, 0.5, "torch_sparse")


def test_cross_entropy_loss_is_positive_and_falls_on_mnist(mnist):
    """Regression test: the original SparseNet fed logits to NLL without log-softmax and diverged to −3e8.

    Sparse layers move less per Adam step (fewer, larger weights per unit), hence the larger rate.
    """
    torch.manual_seed(0)
    model = SparseNet(hidden=[300, 100], density=0.1, backend="sparse")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = iter(mnist.train_dataloader())
    losses = []
    for _ in range(30):
        x, y = next(loader)
        loss = model.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(loss > 0 for loss in losses)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
