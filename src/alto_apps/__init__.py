"""Applications built on ALTO, each a function that builds an ``alto.Pipeline``.

- :mod:`alto_apps.factcheck`: the paper's chatbot verification (answer -> claims ->
  queries -> retrieval -> verdicts -> report), with its evidence rule
  (:mod:`alto_apps.grounding`) and evaluation (:mod:`alto_apps.evaluate`);
- :mod:`alto_apps.rag`: multi-query retrieval-augmented generation;
- :mod:`alto_apps.analysis`: document analysis (sentences, embeddings, labels);
- :mod:`alto_apps.summarize`: map-reduce summarisation.

They use ALTO's public API like any user; ``import alto`` never imports them.
"""
