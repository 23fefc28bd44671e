"""Values as JSON: what ``alto run`` writes and ``alto serve`` sends.

Dataclasses and pydantic models become dicts, tuples lists; anything else that JSON
cannot hold becomes its ``repr`` (said in ``docs/serving.md``).

>>> from dataclasses import dataclass
>>> @dataclass
... class V:
...     label: str
...     ids: tuple
>>> to_jsonable({"v": V("supported", (1, 2)), "n": float("nan")})
{'v': {'label': 'supported', 'ids': [1, 2]}, 'n': 'nan'}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """``value`` with every part JSON can hold as is, the rest converted (see the module)."""
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump) and not isinstance(value, type):
        return to_jsonable(dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return repr(value)
