#!/usr/bin/env bash
# Run here, before scripts/gpu_record.sh's call of a lent GPU machine: what that machine lacks, put in the
# git-ignored folders the call carries. .devdata/ gets the MNIST files (../shared does not travel), .whl/ the
# wheels of zoo's dependencies its Python 3.12 lacks (it has torch, Lightning, torchmetrics, matplotlib, scipy).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${ZOO_DATA_DIR:-../shared/data}
mkdir -p .devdata/mnist
cp "$data"/mnist/*-ubyte.gz .devdata/mnist/
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .whl \
    jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0
du -sh .devdata .whl
