"""Benchmarking ALTO: an open-loop load generator and the paper's reproduction.

``alto.bench.load`` drives any system (ALTO, LangGraph, hand-written) with Poisson
arrivals and summarises latency; ``alto.bench.paper`` reproduces the paper's
fact-check experiment on SIMULATED engines. The command line is ``alto bench``.
"""
