"""Run a sweep or a study of zoo trials described in a YAML file, then summarize and plot it.

    python scripts/sweep.py sweeps/architectures.yaml             # run (or finish) the grid
    python scripts/sweep.py sweeps/architectures.yaml --jobs 2    # two workers here
    python scripts/sweep.py sweeps/multimult_population.yaml      # 100 seeds as one batched model
    python scripts/sweep.py sweeps/fc_search.yaml --search        # Optuna (TPE) search
    python scripts/sweep.py report sweeps/runs/architectures      # redraw summary and figures from the study

A sweep is an Optuna study: SQLite in the output folder by default; with --storage
postgresql://user:password@host/db, any number of workers on any machines run the same
command and share its trials. Rerunning continues the study; a killed worker's trial runs
again; a changed sweep file is refused on an existing study. Results: results.csv,
summary.md, the figures, and a run folder per trial (TensorBoard, HParams, analysis JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.errors import Interrupted, ZooError, ZooFailure, count, exit_on_failure
from zoo.io import folders_to_make, remove_made, write_text
from zoo.sweep import engine, read_sweep, run_sweep
from zoo.sweep.run import check_devices, default_output, report, writable_folder
from zoo.sweep.search import run_search
from zoo.sweep.spec import Figures


def run(args: argparse.Namespace) -> None:
    if args.jobs < 1:
        raise ZooError(f"--jobs must be at least 1, got {args.jobs}")
    if args.heartbeat < 1:
        raise ZooError(f"--heartbeat must be at least 1 (seconds), got {args.heartbeat}")
    if args.search and (args.jobs != 1 or args.retry_failed):
        raise ZooError("--jobs and --retry-failed are a grid's; a --search runs one worker per command (start more)")
    if args.devices is not None:
        check_devices(args.devices)
    spec = read_sweep(args.sweep)
    if not args.search and not spec.trials:
        raise ZooError(f"{args.sweep} has a search: block and no trials: run it with --search")
    if args.search and spec.search is None:  # refused before its output folder is made
        raise ZooError(f"{args.sweep} has no search: block; run it without --search")
    target = Path(args.output) if args.output else default_output(args.sweep, spec)
    made = folders_to_make(target)
    output = writable_folder(target)
    write_text(output / "sweep.yaml", Path(args.sweep).read_text())  # a readable copy; the study holds the record
    options = {"study": args.study, "devices": args.devices, "heartbeat": args.heartbeat, "threads": args.threads}
    try:
        if args.search:
            run_search(spec, output, args.storage, **options)
        else:
            run_sweep(spec, output, args.jobs, storage=args.storage, retry_failed=args.retry_failed, **options)
    except ZooError:
        if made and [path.name for path in output.iterdir()] == ["sweep.yaml"]:  # refused before any trial ran
            (output / "sweep.yaml").unlink()
            remove_made(made)
        raise
    except KeyboardInterrupt:
        raise stopped("interrupted", 130) from None
    except Interrupted as error:
        raise stopped(str(error).split(";")[0], error.exit_code) from None
    print((output / "summary.md").read_text().split("\n## ")[0].strip())
    print(f"\nresults.csv, summary.md and the figures are in {output}")


def stopped(how: str, code: int) -> ZooFailure:
    """The worker's trial went back to the queue: the same command resumes the sweep."""
    error = ZooFailure(f"{how}; the study is consistent, its running trial waits again: resume with {command()}")
    error.exit_code = code
    return error


def command() -> str:
    return " ".join(["python", *sys.argv])


def report_command(args: argparse.Namespace) -> None:
    import optuna

    folder = Path(args.folder) if args.folder else None
    if args.storage is None:
        if folder is None:
            raise ZooError("give the sweep's output folder, or --storage URL")
        if not folder.is_dir():
            raise ZooError(f"{folder}: no such folder; give a sweep's output folder (else --storage URL)")
        if not (folder / "study.db").is_file():
            raise ZooError(f"{folder}: holds no study.db; is it a sweep's output folder? (else give --storage URL)")
    url = engine.storage_url(folder or ".", args.storage)
    storage = engine.open_storage(url)
    names = optuna.get_all_study_names(storage)
    name = args.study or (names[0] if len(names) == 1 else folder.resolve().name if folder else None)
    if name is None:
        held = ", ".join(names) or "none"
        raise ZooError(f"{engine.shown(url)} holds {len(names)} studies: {held}; give --study NAME")
    if name not in names:
        raise ZooError(
            f"study {name!r} is not in {engine.shown(url)}; it holds: {', '.join(names) or 'none'} (--study)"
        )
    study = optuna.load_study(study_name=name, storage=storage)
    output = writable_folder(folder or Path("sweeps") / "runs" / name)
    figures = study.user_attrs.get("figures") or {}
    rows = report(study, output, Figures(**figures), say=print)
    print(f"{len(rows)} rows of study {name!r} → results.csv, summary.md and the figures in {output}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        parser = argparse.ArgumentParser(prog="sweep.py report", description="redraw a study's summary from its record")
        parser.add_argument("folder", nargs="?", help="the sweep's output folder (where the report goes)")
        parser.add_argument("--storage", default=None, help="the study's storage URL (default: the folder's study.db)")
        parser.add_argument("--study", default=None, help="the study's name, if the storage holds several")
        args = parser.parse_args(sys.argv[2:])
        exit_on_failure(lambda: report_command(args), program="sweep")
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="the sweep file, e.g. sweeps/architectures.yaml")
    parser.add_argument("--jobs", type=int, default=1, help="workers here (cores / jobs threads each)")
    parser.add_argument(
        "--threads",
        type=count,
        default=None,
        help="CPU threads of each trial (default: cores / jobs; a search: all); a row reproduces on as many only",
    )
    parser.add_argument(
        "--output", default=None, help="results folder (default: the file's output:, else sweeps/runs/<name>)"
    )
    parser.add_argument("--search", action="store_true", help="run the file's search: block as an Optuna study")
    parser.add_argument(
        "--storage", default=None, help="the study's storage URL, shared by workers (default: SQLite in the output)"
    )
    parser.add_argument("--study", default=None, help="the study's name (default: the output folder's name)")
    parser.add_argument(
        "--devices", default=None, help="--trainer.devices of this worker's trials, e.g. [2] for the third GPU"
    )
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=engine.HEARTBEAT,
        help=f"seconds between a running trial's heartbeats; {engine.GRACE} missed: its worker is taken for dead",
    )
    parser.add_argument("--retry-failed", action="store_true", help="run the trials that failed once more")
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="sweep")


if __name__ == "__main__":
    main()
