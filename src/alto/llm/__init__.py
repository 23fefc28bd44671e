"""LLM backends (all streaming token by token) and LLM stage helpers.

- :class:`LlamaCpp`: llama.cpp in process, SmolLM2-135M by default (the embedded default).
- :class:`OpenAICompatible`: any OpenAI-compatible server.
- :class:`Simulated`: a SIMULATED continuous-batching engine for scheduling tests and
  cluster-scale benchmarks.
"""

from .base import LLM, LLMError, LLMUnavailable, Usage, to_messages
from .llamacpp import LlamaCpp, default_model_path
from .openai import OpenAICompatible
from .simulated import Simulated
from .stages import generate, generate_split, render, split_parts

__all__ = [
    "LLM",
    "LLMError",
    "LLMUnavailable",
    "LlamaCpp",
    "OpenAICompatible",
    "Simulated",
    "Usage",
    "default_model_path",
    "generate",
    "generate_split",
    "render",
    "split_parts",
    "to_messages",
]
