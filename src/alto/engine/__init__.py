"""The engine: what one replica does, shared by every runtime.

A runtime decides only *where* replicas run (placement) and *how* a message reaches
one (transport). Everything else is here: the :class:`ReplicaExecutor` (inbox, lanes,
item scopes, supervision), the operators, invoking stage functions, requests and
their events, emitting through the routers, observation, and the options every
runtime takes.
"""

from alto.engine._context import ItemContext, count_tokens, current
from alto.engine._executor import Host, ReplicaExecutor
from alto.engine._inbox import Inbox
from alto.engine._observe import console_tracing, group_replicas
from alto.engine._options import RuntimeKwargs, RuntimeOptions
from alto.engine._requests import Admission, Ended, Event, Requests
from alto.engine._scope import ItemScope
from alto.engine._transport import Emit, Send, Transport, Wired, build_emit

__all__ = [
    "Admission",
    "Emit",
    "Ended",
    "Event",
    "Host",
    "Inbox",
    "ItemContext",
    "ItemScope",
    "ReplicaExecutor",
    "Requests",
    "RuntimeKwargs",
    "RuntimeOptions",
    "Send",
    "Transport",
    "Wired",
    "build_emit",
    "console_tracing",
    "count_tokens",
    "current",
    "group_replicas",
]
