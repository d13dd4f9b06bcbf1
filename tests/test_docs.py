"""What the README and docs say about the code, checked against the code."""

from __future__ import annotations

import importlib
import inspect
import re

import yaml
from conftest import ROOT

import zoo


def prose(path: str) -> str:
    """A page's text with its line breaks and runs of spaces as single spaces, for sentences split over lines."""
    return re.sub(r"\s+", " ", (ROOT / path).read_text())


def test_the_readmes_list_models_example_is_what_it_prints():
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("zoo.list_models()"))
    assert line.split("#", 1)[1].strip() == repr(zoo.list_models())


def test_the_callbacks_default_sample_count_is_one_number_said_alike_everywhere():
    """zoo/defaults.yaml, the classes' defaults, the README and both analyses' pages."""
    callbacks = yaml.safe_load((ROOT / "zoo" / "defaults.yaml").read_text())["trainer"]["callbacks"]
    counts = set()
    for callback in callbacks:
        module, name = callback["class_path"].rsplit(".", 1)
        default = inspect.signature(getattr(importlib.import_module(module), name)).parameters["max_samples"].default
        counts |= {default, callback["init_args"]["max_samples"]}
    assert len(counts) == 1, counts
    count = f"{counts.pop():,}"
    assert f"in the callbacks, on {count} training samples by default" in prose("README.md")
    assert f"the callback judges the first {count} training samples by default" in prose("docs/activations.md")
    assert f"analyses the first `max_samples` (default {count}) samples" in prose("docs/task_separation.md")
