"""Runs zoo commands in this process and prints, as JSON, each one's exit code and error output.

Used by tests/test_errors.py inside a private mount namespace (``unshare --mount``), where
the test mounts a read-only or a full file system before starting this script:

    python tests/fault_driver.py '[{"argv": ["fit", "--config", ...], "then_load": "path.ckpt"}, ...]'

``then_load`` names a checkpoint to read back after the command (its epoch is reported):
the file system goes away with the namespace.
"""

import contextlib
import io
import json
import sys

import torch

from zoo.cli import main

results = []
for run in json.loads(sys.argv[1]):
    captured = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(captured):
        try:
            main(run["argv"])
        except SystemExit as exit_:
            code = exit_.code
    result = {"argv": run["argv"], "code": code, "stderr": captured.getvalue()}
    if run.get("then_load"):
        result["loaded_epoch"] = torch.load(run["then_load"], weights_only=True)["epoch"]
    results.append(result)
print(json.dumps(results))
