"""The engine: what one replica does, shared by every runtime.

A runtime decides only *where* replicas run (placement) and *how* a message reaches
one (transport). Everything else is here: the :class:`ReplicaExecutor` (inbox, lanes,
item scopes, supervision), the operators, invoking stage functions, requests and
their events, emitting through the routers, observation, and the options every
runtime takes.
"""

from alto.engine._context import ItemContext, count_tokens, current
from alto.engine._executor import ReplicaExecutor
from alto.engine._inbox import Inbox
from alto.engine._options import RuntimeKwargs, RuntimeOptions
from alto.engine._requests import Ended, Event, Requests
from alto.engine._transport import Emit, build_emit

__all__ = [
    "Emit",
    "Ended",
    "Event",
    "Inbox",
    "ItemContext",
    "ReplicaExecutor",
    "Requests",
    "RuntimeKwargs",
    "RuntimeOptions",
    "build_emit",
    "count_tokens",
    "current",
]
