"""Small tasks that need no download: iris and the two-products regression."""

from __future__ import annotations

import torch

from zoo.data.datasets import Splits

IRIS_TEST_FRACTION = 0.2


def load_iris(seed: int) -> Splits:
    """Fisher's iris (150 × 4, 3 classes) from scikit-learn's bundled copy.

    The file is sorted by class, so the held-out test fifth is drawn by a
    permutation fixed by ``seed``.
    """
    from sklearn.datasets import load_iris as sklearn_iris

    features, labels = sklearn_iris(return_X_y=True)
    inputs = torch.as_tensor(features, dtype=torch.float32)
    targets = torch.as_tensor(labels, dtype=torch.long)
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
    n_test = round(IRIS_TEST_FRACTION * len(inputs))
    test, train = order[:n_test], order[n_test:]
    return Splits(inputs[train], targets[train], inputs[test], targets[test])


def make_multimult(num_samples: int, seed: int) -> Splits:
    """Two multiplications side by side: x ∈ U[-1, 1]^4 → (x0·x1, x2·x3).

    A minimal task with two independent outputs, for asking whether a network
    computes them with separate neurons. The test set (a fifth of
    ``num_samples``) comes from its own random stream.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(num_samples + num_samples // 5, 4, generator=generator) * 2 - 1
    targets = torch.stack([inputs[:, 0] * inputs[:, 1], inputs[:, 2] * inputs[:, 3]], dim=1)
    return Splits(inputs[:num_samples], targets[:num_samples], inputs[num_samples:], targets[num_samples:])
