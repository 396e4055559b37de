"""Silverset benchmarks, one module each; run from the repository root as ``python -m benchmarks.<name>``.

Each writes a JSON result under ``--out`` (default ``benchmarks/results``) and is never part of ``make test``.
Modules starting with ``_`` are shared pieces, not benchmarks. Test helpers come from ``tests.helpers``.
"""
