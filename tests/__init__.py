"""Silverset's test suite, a regular package: ``tests.helpers``, ``tests.fakes`` and test modules import by full name.

Every folder under ``tests/`` holding Python files is a package (an ``__init__.py``), so pytest's importlib mode names
each module from the repository root (``tests.components.teacher.test_gemini``) and ``import tests.x`` resolves to
this folder whatever file pytest collected first; no test edits ``sys.path``.
"""
