"""Network surgery: pure functions from trained models to smaller or combined ones.

Each operation takes ordinary zoo models (and the data it judges on) and returns a new
ordinary zoo model, whose hyper-parameters say what it is (``FCNet(hidden=[37, 12])``,
``rank=[...]``, ``SparseNet(connections=[...])``), plus a report of what changed.
:func:`zoo.surgery.export.export` writes it as a checkpoint and the config that builds it.
"""

from zoo.surgery.compress import CompressionReport, compress, compress_to_tolerance
from zoo.surgery.export import export
from zoo.surgery.merge import merge
from zoo.surgery.prune import PruneReport, prune_dead

__all__ = ["CompressionReport", "PruneReport", "compress", "compress_to_tolerance", "export", "merge", "prune_dead"]
