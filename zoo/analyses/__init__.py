"""Every analysis declared once (:class:`Analysis`): callbacks, sweeps, summaries and the dashboard read the registry.

The pure functions live in :mod:`zoo.analysis`; a declaration says what a run, a study and a
reader do with one: its options, the summary numbers it contributes, its figures, its charts.
"""

from zoo.analyses.declaration import (
    Analysis,
    Number,
    Samples,
    build_options,
    declared_number,
    figures_for,
    get_analysis,
    list_analyses,
    register_analysis,
)
from zoo.analyses.task_separation import TASK_SEPARATION  # registers first: the order of tables and charts

# isort: split
from zoo.analyses.activations import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "TASK_SEPARATION",
    "Analysis",
    "Number",
    "Samples",
    "build_options",
    "declared_number",
    "figures_for",
    "get_analysis",
    "list_analyses",
    "register_analysis",
]
