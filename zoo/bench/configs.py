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


def multimult_population(size: int) -> ZooModule:
    """A population of ``size`` configs/multimult.yaml nets (FCNet [32, 32], tanh; 4 inputs, 2 outputs), seeds 0…"""
    spec = yaml.safe_load((CONFIGS / "multimult.yaml").read_text())["model"]
    return create_model(
        "Population",
        architecture=spec["class_path"].rsplit(".", 1)[-1],
        size=size,
        member=spec["init_args"],
        first_seed=0,
        input_shape=(4,),
        num_outputs=2,
        task="regression",
    )
