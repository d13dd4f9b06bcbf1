#!/usr/bin/env bash
# One zoo sweep worker per array task, one GPU each, all on one study in a database:
#
#   export ZOO_STORAGE=postgresql://user:password@host/zoo   # reachable from every node
#   sbatch --array=0-15 scripts/slurm_sweep.sh sweeps/architectures.yaml
#
# Each worker takes waiting trials until none is left; start more (or fewer) at any time.
# Run folders go to the node's own output folder; rows go to the database (see docs/cluster.md).
#SBATCH --job-name=zoo-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=zoo-sweep-%A_%a.out
set -euo pipefail

sweep="${1:?give the sweep file: sbatch --array=0-15 scripts/slurm_sweep.sh sweeps/NAME.yaml}"
: "${ZOO_STORAGE:?set ZOO_STORAGE to the database URL of the study, e.g. postgresql://user:password@host/zoo}"
output=${ZOO_OUTPUT:-sweeps/runs/$(basename "$sweep" .yaml)}

# Slurm gives the task one GPU as CUDA_VISIBLE_DEVICES: inside the task it is device 0.
# exec: Slurm's SIGTERM (--signal) reaches the worker, which puts its trial back in the queue.
exec python scripts/sweep.py "$sweep" --storage "$ZOO_STORAGE" --output "$output" --devices 1
