"""Stage operators: what one replica of each stage kind does with one message.

``_base`` declares the :class:`Operator` contract the executor relies on; the transform
operators (``map``, ``filter``, ``expand``) and the fan-in operators (``zip``,
``aggregate``, where counted completion is decided) each import it. The registry below
maps each stage kind to its operator; :func:`make_operator` is the only way the
executor makes one.

>>> sorted(KINDS)
['aggregate', 'expand', 'filter', 'map', 'zip']
"""

from alto.dataflow import StageSpec
from alto.engine.operators._base import Emit, Operator, Right, StageContext
from alto.engine.operators._fanin import AggregateOperator, ZipOperator
from alto.engine.operators._transform import ExpandOperator, FilterOperator, MapOperator

__all__ = [
    "KINDS",
    "AggregateOperator",
    "Emit",
    "ExpandOperator",
    "FilterOperator",
    "MapOperator",
    "Operator",
    "Right",
    "StageContext",
    "ZipOperator",
    "make_operator",
]

KINDS: dict[str, type[Operator]] = {
    "map": MapOperator,
    "filter": FilterOperator,
    "expand": ExpandOperator,
    "zip": ZipOperator,
    "aggregate": AggregateOperator,
}


def make_operator(spec: StageSpec, ctx: StageContext, emit: Emit) -> Operator:
    """The operator for one replica of ``spec`` (call :meth:`Operator.setup` next)."""
    return KINDS[spec.kind](spec, ctx, emit)
