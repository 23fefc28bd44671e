"""The description of a pipeline: what runs, not how.

:class:`Pipeline` and :class:`Stream` build a DAG of frozen :class:`StageSpec` records;
:mod:`ancestry <alto.dataflow._ancestry>` defines the messages items travel as (paths,
``Open``/``Done`` markers, tombstones) and counted completion; the graph can be drawn
(:func:`to_mermaid`, :func:`to_dot`). Nothing here imports the engine or a runtime.
"""

from alto.dataflow._ancestry import CompletionTracker, Done, Group, Item, Message, Open, Path, Tombstone, is_data
from alto.dataflow._graph import describe, to_dot, to_mermaid
from alto.dataflow._pipeline import ON_ERROR, UNSET, Pipeline, StageKind, StageOptions, StageSpec, Stream

__all__ = [
    "ON_ERROR",
    "UNSET",
    "CompletionTracker",
    "Done",
    "Group",
    "Item",
    "Message",
    "Open",
    "Path",
    "Pipeline",
    "StageKind",
    "StageOptions",
    "StageSpec",
    "Stream",
    "Tombstone",
    "describe",
    "is_data",
    "to_dot",
    "to_mermaid",
]
