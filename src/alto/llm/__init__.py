"""LLM backends (all streaming token by token) and LLM stage helpers.

- :class:`LlamaCpp`: llama.cpp in process, SmolLM2-135M by default (the embedded default).
- :class:`OpenAICompatible`: any OpenAI-compatible server.
- Incremental splitters (:class:`Lines`, :class:`ListItems`, :class:`Sentences`,
  :class:`JsonArrayItems`): each part the moment it is complete in the token stream.
- :class:`Simulated`: a SIMULATED continuous-batching engine for scheduling tests and
  cluster-scale benchmarks.
"""

from alto.llm._base import LLM, LLMError, LLMUnavailable, Usage, to_messages
from alto.llm._llamacpp import LlamaCpp, default_model_path
from alto.llm._openai import OpenAICompatible
from alto.llm._simulated import Simulated
from alto.llm._split import SPLITTERS, JsonArrayItems, Lines, ListItems, Sentences, Splitter, split_stream
from alto.llm._stages import generate, generate_split, render, split_parts

__all__ = [
    "LLM",
    "SPLITTERS",
    "JsonArrayItems",
    "LLMError",
    "LLMUnavailable",
    "Lines",
    "ListItems",
    "LlamaCpp",
    "OpenAICompatible",
    "Sentences",
    "Simulated",
    "Splitter",
    "Usage",
    "default_model_path",
    "generate",
    "generate_split",
    "render",
    "split_parts",
    "split_stream",
    "to_messages",
]
