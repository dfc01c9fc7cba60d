"""Answer-quality evaluation: the RLM against direct prompting and a retrieval floor.

See ``benchmarks/eval/README.md`` for the question-set recipe and how to run it.
"""
