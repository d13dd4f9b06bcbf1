"""``sparse``: forward + backward of one batch through a SparseLinear, every backend, against nn.Linear.

Timed with torch.utils.benchmark (median, CUDA synchronised), on the CPU and on a GPU when
there is one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from zoo.bench.timing import forward_backward_ms
from zoo.models.sparse import SparseLinear, torch_sparse_available

DENSE = "nn.Linear"


def backends() -> list[str]:
    """The SparseLinear backends this machine has (``torch_sparse`` only where the package is installed)."""
    return ["masked", "sparse"] + (["torch_sparse"] if torch_sparse_available() else [])


def kernel_ms(
    *, features: int, batch_size: int, densities: Sequence[float], device: str = "cpu"
) -> dict[str, dict[str, float] | float]:
    """``{backend: {"5%": ms, ...}, "nn.Linear": ms}`` for a ``features`` × ``features`` layer."""
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    x = torch.randn(batch_size, features, device=device, requires_grad=True)
    table: dict[str, dict[str, float] | float] = {
        backend: {
            f"{density:.0%}": forward_backward_ms(SparseLinear(features, features, density, backend).to(device), x)
            for density in densities
        }
        for backend in backends()
    }
    table[DENSE] = forward_backward_ms(torch.nn.Linear(features, features).to(device), x)
    return table


def sparse(*, features: int, batch_size: int, densities: Sequence[float]) -> dict[str, dict]:
    """:func:`kernel_ms` on every device this machine has, printed as a table per device."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"forward + backward of one {batch_size}×{features} batch through a {features}×{features} layer, ms (median); "
        f"{torch.get_num_threads()} CPU threads" + ("" if torch_sparse_available() else "; torch_sparse not installed")
    )
    tables = {}
    for device in devices:
        table = tables[device] = kernel_ms(features=features, batch_size=batch_size, densities=densities, device=device)
        name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        print(f"\n{device} ({name}): {DENSE} {table[DENSE]:.3f} ms")
        print(f"{'density':>8}" + "".join(f"{backend:>14}" for backend in backends()) + "   fastest vs nn.Linear")
        for density in densities:
            times = {backend: table[backend][f"{density:.0%}"] for backend in backends()}
            fastest = min(times, key=times.__getitem__)
            print(
                f"{density:>8.0%}"
                + "".join(f"{ms:>14.3f}" for ms in times.values())
                + f"   {fastest} {table[DENSE] / times[fastest]:.2f}×"
            )
    return tables
