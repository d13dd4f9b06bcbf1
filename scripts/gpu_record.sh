#!/usr/bin/env bash
# Issue 25's GPU record in one call of a lent GPU machine, after scripts/gpu_prepare.sh here:
#     run(command="bash scripts/gpu_record.sh", carry=[".whl", ".devdata"], timeout_s=540)
# It installs the carried wheels, runs the tests that need CUDA, then `bench.py gpu` (about 4 minutes).
# Everything comes back under $OUT: nvidia-smi.txt, tests.log, bench.log, gpu.json (rewritten after each
# section, so a run cut short keeps what it measured), and benchmarks.json and benchmarks.md: copy those two
# into docs/ (or `python scripts/bench.py gpu-merge --record gpu.json` for a partial record).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_record}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD ZOO_DATA_DIR=$PWD/.devdata PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" \
    tests/test_gpu.py tests/test_task_separation.py tests/test_sparse.py tests/test_errors.py 2>&1 | tee "$out/tests.log"
timeout 330 python3 scripts/bench.py gpu --device cuda --repeats 2 --record "$out/gpu.json" --log-dir /tmp/zoo_logs \
    2>&1 | tee "$out/bench.log"
cp docs/benchmarks.json docs/benchmarks.md "$out/"
