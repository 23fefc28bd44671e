"""Routing: each sender picks the downstream replica of every item, locally.

A :class:`Router` base with its hooks declared (:mod:`alto.routing._base`), one policy
per module (round robin, power of two choices, rendezvous hashing, prompt-aware), the
LLM cost estimates the prompt-aware policy prices items with (:mod:`alto.routing._cost`),
and the registry behind a stage's ``router=`` option.

>>> r = Rendezvous()
>>> a = r.choose((5, 1), None, 3, lambda i: 0.0)
>>> all(r.choose((5, 1), None, 3, lambda i: 0.0) == a for _ in range(10))
True
"""

from alto.routing._base import LoadFn, Router, stable_hash
from alto.routing._cost import ItemMeta, LLMCall, OutputEstimator, item_meta, llm_call_of
from alto.routing._power_of_two import PowerOfTwo
from alto.routing._prompt_aware import PromptAware
from alto.routing._registry import ROUTER_NAMES, Report, Route, make_router, replica_chooser, router_is_keyed
from alto.routing._rendezvous import Rendezvous
from alto.routing._round_robin import RoundRobin

__all__ = [
    "ROUTER_NAMES",
    "ItemMeta",
    "LLMCall",
    "LoadFn",
    "OutputEstimator",
    "PowerOfTwo",
    "PromptAware",
    "Rendezvous",
    "Report",
    "RoundRobin",
    "Route",
    "Router",
    "item_meta",
    "llm_call_of",
    "make_router",
    "replica_chooser",
    "router_is_keyed",
    "stable_hash",
]
