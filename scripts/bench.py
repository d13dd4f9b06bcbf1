"""Benchmarks that print measured figures (speed targets live here, never in tests).

    python scripts/bench.py pipeline   # one FCNet epoch on MNIST: zoo (Lightning) vs a plain PyTorch loop
    python scripts/bench.py sparse     # SparseLinear backends vs nn.Linear, 1000×1000, several densities
    python scripts/bench.py sparse-epoch     # one MNIST epoch: configs/set.yaml's SparseNet (CSR) vs the same FCNet
    python scripts/bench.py task-separation  # the analysis on 10,000 MNIST test images vs the per-sample loop
    python scripts/bench.py activations      # the activation analysis on 10,000 MNIST test images
    python scripts/bench.py population       # N seeds as one Population vs N single runs → docs/benchmarks.*
    python scripts/bench.py speed            # start-up, per-step work, populations, analyses → docs/benchmarks.*
    python scripts/bench.py analysis-pass --members-list 100 1000 --profile  # a population pass, numbers to files
    python scripts/bench.py report           # training, analyses, kernels in one run → docs/benchmarks.md and .json
    python scripts/bench.py gpu --record gpu.json  # issue 25's GPU record (scripts/gpu_record.sh) → docs/benchmarks.*
    python scripts/bench.py gpu-merge --record gpu.json  # a record (cut short, say) into docs/benchmarks.*

``pipeline`` runs the same model, optimizer and batches of the same tensors in
both loops; runs alternate so that load on the machine hits both alike, and
the best of ``--repeats`` is reported; ``sparse-epoch`` does the same for the
SparseNet of ``configs/set.yaml`` and the FCNet of the same widths and dropout,
in both loops, and times a SET step on it. ``sparse`` times forward + backward of
one batch with torch.utils.benchmark (median, CUDA synchronised), on the CPU
and on a GPU when there is one. ``pipeline`` and ``report`` train on ``--device``
(a GPU when there is one), every pipeline synchronised before its clock stops.
``report`` keeps the populations' section that ``population`` wrote. The
benchmarks themselves live in ``zoo.bench``, one module each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from zoo.bench.activations import activations_speed
from zoo.bench.analysis_pass import analysis_pass
from zoo.bench.gpu import gpu_record, merge_record
from zoo.bench.pipeline import pipeline
from zoo.bench.population import POPULATIONS, population
from zoo.bench.report import report
from zoo.bench.sparse import sparse
from zoo.bench.sparse_epoch import sparse_epoch
from zoo.bench.speed import speed
from zoo.bench.task_separation import task_separation_speed
from zoo.bench.timing import default_device
from zoo.errors import count, exit_on_failure

BENCHMARKS = {
    "pipeline": lambda args: pipeline(
        hidden=args.hidden, batch_size=args.batch_size, repeats=args.repeats, device=args.device, log_dir=args.log_dir
    ),
    "sparse": lambda args: sparse(features=args.features, batch_size=args.batch_size, densities=args.densities),
    "sparse-epoch": lambda args: sparse_epoch(
        batch_size=args.batch_size, repeats=args.repeats, device=args.device, log_dir=args.log_dir
    ),
    "task-separation": lambda args: task_separation_speed(hidden=args.hidden, reference_samples=args.reference_samples),
    "activations": lambda args: activations_speed(hidden=args.hidden),
    "population": lambda args: population(
        names=args.populations, members=args.members, epochs=args.epochs, threads=args.threads, log_dir=args.log_dir
    ),
    "speed": lambda args: speed(
        repeats=args.repeats,
        device=args.device,
        log_dir=args.log_dir,
        members=args.members or 100,
        fc_repeats=args.fc_repeats,
    ),
    "analysis-pass": lambda args: analysis_pass(
        members=args.members_list, passes=args.repeats, profile=args.profile, analyses=tuple(args.analyses)
    ),
    "gpu": lambda args: gpu_record(
        device=args.device,
        log_dir=args.log_dir,
        out=Path(args.record),
        repeats=args.repeats,
        members=tuple(args.members_list),
        epochs=args.epochs,
    ),
    "gpu-merge": lambda args: merge_record(Path(args.record)),
    "report": lambda args: report(
        batch_size=args.batch_size,
        repeats=args.repeats,
        device=args.device,
        log_dir=args.log_dir,
        densities=args.densities,
    ),
}


def _device(name: str) -> torch.device:
    """``--device``: a device this machine has, or one clear message (argparse prints it and exits 2)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{name!r} is not a device; accepted: cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{name!r}: accepted devices are cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{name!r}: this machine has no CUDA GPU; use cpu")
    return device


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=list(BENCHMARKS))
    parser.add_argument("--hidden", type=count, nargs="+", default=[1024, 512], help="pipeline: FCNet widths")
    parser.add_argument("--features", type=count, default=1000, help="sparse: layer size")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.5], help="sparse: densities")
    parser.add_argument(
        "--reference-samples", type=count, default=200, help="task-separation: images the slow loop runs on"
    )
    parser.add_argument("--batch-size", type=count, default=128)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument(
        "--fc-repeats", type=count, default=1, help="speed: configs/fc.yaml's whole runs, with and without analyses"
    )
    parser.add_argument("--log-dir", default="lightning_logs")
    parser.add_argument(
        "--device",
        type=_device,
        default=default_device(),
        help="pipeline, sparse-epoch, report: where the training pipelines run",
    )
    parser.add_argument("--populations", nargs="+", default=list(POPULATIONS), choices=list(POPULATIONS))
    parser.add_argument("--members", type=count, default=None, help="population: members (default: 100 and 20)")
    parser.add_argument("--epochs", type=count, default=None, help="population, gpu: epochs (default: the config's)")
    parser.add_argument("--threads", type=count, default=1, help="population: CPU threads for every fit")
    parser.add_argument(
        "--members-list", type=count, nargs="+", default=[100, 1000], help="analysis-pass, gpu: population sizes"
    )
    parser.add_argument(
        "--analyses", nargs="+", default=["task_separation", "activations"], choices=["task_separation", "activations"]
    )
    parser.add_argument("--profile", action="store_true", help="analysis-pass: one more pass under cProfile")
    parser.add_argument(
        "--record", default="gpu.json", help="gpu: the record it writes after each section; gpu-merge: the one it reads"
    )
    return parser


def main() -> None:
    args = parser().parse_args()
    exit_on_failure(lambda: BENCHMARKS[args.benchmark](args), program="bench")


if __name__ == "__main__":
    main()
