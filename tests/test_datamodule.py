import pytest
import torch

from zoo.data import DATASETS, TensorLoader, ZooDataModule, data_settings
from zoo.data.datasets import DatasetName
from zoo.errors import ZooError


def test_dataset_names_match_the_registry():
    assert DATASETS.keys() == set(DatasetName.__args__)


def test_mnist_splits(mnist):
    train, val, test = (mnist.split(name) for name in ("train", "val", "test"))
    assert [len(part[0]) for part in (train, val, test)] == [55_000, 5_000, 10_000]
    assert train[0].shape[1:] == (1, 28, 28) and train[1].dtype == torch.long
    assert torch.bincount(test[1], minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # standardized with training statistics: exact on train, close elsewhere
    assert abs(train[0].mean().item()) < 1e-4 and abs(train[0].std().item() - 1) < 1e-4
    assert abs(test[0].mean().item()) < 0.02


def test_what_the_model_is_told(mnist):
    assert (mnist.task, mnist.input_shape, mnist.num_outputs) == ("classification", (1, 28, 28), 10)
    regression = ZooDataModule("multimult")
    assert (regression.task, regression.input_shape, regression.num_outputs) == ("regression", (4,), 2)


def test_fashion_mnist_without_normalization(data_dir):
    module = ZooDataModule("fashion_mnist", data_dir=str(data_dir), normalize="none")
    inputs, targets = module.split("test")
    assert inputs.min() == 0 and inputs.max() == 1
    assert torch.bincount(targets).tolist() == [1000] * 10
    assert module.output_names[9] == "Ankle boot"


def _fingerprints(inputs):
    return set(inputs[:, 0].tolist())


def test_validation_split_is_disjoint_and_deterministic():
    pool = ZooDataModule("multimult", num_samples=1200, normalize="none")
    train, val = pool.split("train")[0], pool.split("val")[0]
    assert len(val) == 100 and len(train) == 1100
    assert not _fingerprints(train) & _fingerprints(val)
    again = ZooDataModule("multimult", num_samples=1200, normalize="none")
    assert torch.equal(again.split("val")[0], val)


def test_split_seed_changes_the_split(mnist, data_dir):
    other = ZooDataModule("mnist", data_dir=str(data_dir), seed=1)
    assert not torch.equal(other.split("val")[1], mnist.split("val")[1])


def test_multimult_targets_are_the_two_products():
    module = ZooDataModule("multimult", num_samples=500, normalize="none")
    for name in ("train", "val", "test"):
        x, y = module.split(name)
        assert torch.allclose(y, torch.stack([x[:, 0] * x[:, 1], x[:, 2] * x[:, 3]], 1))
    assert module.split("test")[0].abs().max() <= 1
    assert len(module.split("test")[0]) == 100


def test_iris():
    module = ZooDataModule("iris", val_fraction=0.25, batch_size=16)
    sizes = [len(module.split(name)[0]) for name in ("train", "val", "test")]
    assert sizes == [90, 30, 30]
    labels = torch.cat([module.split(name)[1] for name in ("train", "val", "test")])
    assert torch.bincount(labels).tolist() == [50, 50, 50]
    assert torch.allclose(module.split("train")[0].mean(0), torch.zeros(4), atol=1e-5)


def test_loader_covers_each_sample_once_per_epoch():
    inputs = torch.arange(1000)
    loader = TensorLoader(inputs, inputs * 2, batch_size=64, shuffle=True, seed=3)
    assert len(loader) == 16
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [64] * 15 + [40]
    seen = torch.cat([x for x, _ in batches])
    assert torch.equal(seen.sort().values, inputs)
    assert all(torch.equal(y, x * 2) for x, y in batches)
    loader.sampler.set_epoch(1)
    second = torch.cat([x for x, _ in loader])
    assert not torch.equal(second, seen)
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat([x for x, _ in loader]), seen)


def test_overfit_batches_trains_on_the_same_batches_every_epoch(tmp_path):
    """Lightning says it turned shuffling off for --trainer.overfit_batches; zoo's loader reshuffled anyway."""
    import pytorch_lightning as pl

    class Seen(pl.Callback):
        def __init__(self) -> None:
            self.batches: list[list[torch.Tensor]] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.batches.append([])

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.batches[-1].append(batch[1].clone())

    from zoo.models import FCNet

    seen = Seen()
    model = FCNet(input_shape=(4,), num_outputs=3, hidden=[4])
    trainer = pl.Trainer(
        max_epochs=3, overfit_batches=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[seen], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=ZooDataModule("iris", batch_size=16))
    first = torch.cat(seen.batches[0])
    assert len(seen.batches) == 3 and len(first) == 32
    assert all(torch.equal(torch.cat(epoch), first) for epoch in seen.batches[1:])


def test_evaluation_loader_keeps_order():
    inputs = torch.arange(10)
    assert torch.equal(torch.cat([x for x, _ in TensorLoader(inputs, inputs, 3, shuffle=False)]), inputs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "data.batch_size must be a positive integer, got 0"),
        ({"eval_batch_size": -5}, "data.eval_batch_size must be a positive integer, got -5"),
        ({"val_fraction": 1.0}, "data.val_fraction must lie strictly between 0 and 1, got 1.0"),
        ({"num_samples": 100, "dataset": "iris"}, "has a fixed size"),
        ({"dataset": "cifar"}, "unknown dataset 'cifar'; accepted: mnist, fashion_mnist, iris, multimult"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ZooError, match=message):
        ZooDataModule(**kwargs)


def test_batch_larger_than_training_split():
    module = ZooDataModule("iris", batch_size=1000)
    with pytest.raises(ZooError, match="data.batch_size 1000 is larger than the training split"):
        module.setup("fit")


def test_whole_splits_do_not_need_a_batch_size_that_fits():
    """Analyses read whole splits; only training checks that a batch fits in the training split."""
    data = ZooDataModule("iris", batch_size=500)
    assert len(data.split("train")[0]) == 110
    with pytest.raises(ZooError, match="data.batch_size 500 is larger than the training split"):
        data.setup("fit")


def test_outputs_selects_targets_of_a_regression_task():
    full = ZooDataModule("multimult", num_samples=200)
    second = ZooDataModule("multimult", num_samples=200, outputs=[1])
    both = ZooDataModule("multimult", num_samples=200, outputs=[1, 0])
    assert (second.num_outputs, second.output_names) == (1, ("x2*x3",))
    for name in ("train", "val", "test"):
        inputs, targets = full.split(name)
        assert torch.equal(second.split(name)[0], inputs)
        assert torch.equal(second.split(name)[1], targets[:, [1]])
        assert torch.equal(both.split(name)[1], targets[:, [1, 0]])


@pytest.mark.parametrize(("dataset", "outputs", "message"), [("iris", [0], "regression"), ("multimult", [2], "0 to 1")])
def test_outputs_refuses_what_is_not_there(dataset, outputs, message):
    with pytest.raises(ZooError, match=message):
        ZooDataModule(dataset, outputs=outputs)


def _splits(module):
    return [tensor for name in ("train", "val", "test") for tensor in module.split(name)]


def _same_splits(a, b):
    return all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(_splits(a), _splits(b), strict=True))


def test_data_settings_are_what_decides_the_samples():
    """Equal settings hold equal splits, whatever else differs; each setting changes them (the checkpoint check)."""
    base = {"dataset": "multimult", "num_samples": 300}
    reference = ZooDataModule(**base)
    alike = ZooDataModule(**base, batch_size=7, eval_batch_size=9, shuffle_seed=5, outputs=[0, 1])
    assert data_settings(alike.hparams) == data_settings(reference.hparams)
    assert _same_splits(alike, reference)
    assert data_settings(ZooDataModule("multimult").hparams) == data_settings({**base, "num_samples": 10_000})
    for change in ({"seed": 1}, {"val_fraction": 0.3}, {"normalize": "none"}, {"num_samples": 301}, {"outputs": [1]}):
        other = ZooDataModule(**{**base, **change})
        assert data_settings(other.hparams) != data_settings(reference.hparams), change
        assert not _same_splits(other, reference), change


def test_a_validation_fraction_differs_only_where_it_takes_other_samples():
    reference = ZooDataModule("multimult", num_samples=400, val_fraction=0.2)  # 80 of 400
    assert reference.differences({**reference.hparams, "val_fraction": 0.2001}) == []
    assert reference.differences({**reference.hparams, "val_fraction": 0.21}) == ["val_fraction"]  # 84
    assert reference.differences({**reference.hparams, "val_fraction": 0.2001, "seed": 4}) == ["seed"]
    same = ZooDataModule("multimult", num_samples=400, val_fraction=0.2001)
    assert _same_splits(same, reference)
