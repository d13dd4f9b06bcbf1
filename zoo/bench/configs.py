"""Where the benchmarks find the shipped configs and write their report: this checkout."""

from __future__ import annotations

from pathlib import Path

import yaml

from zoo import ZooModule, create_model

CHECKOUT = Path(__file__).resolve().parents[2]
CONFIGS = CHECKOUT / "configs"
DOCS = CHECKOUT / "docs"


def shipped_model(config: str) -> ZooModule:
    """The model ``configs/<config>`` names, with its ``init_args`` (MNIST's input shape and outputs: the defaults)."""
    spec = yaml.safe_load((CONFIGS / config).read_text())["model"]
    return create_model(spec["class_path"].rsplit(".", 1)[-1], **spec["init_args"])
