"""The one place ScaNN is imported: its pybind searcher, with TensorFlow hidden during the import.

ScaNN 1.4.2's TensorFlow ops were built for TF 2.20 and fail to load next to TF 2.21 (pulled in by
tfx-bsl). The pybind path needs no TensorFlow, so ``sys.modules["tensorflow"]`` is set to None while
ScaNN imports (its ``__init__`` then skips the TF ops) and restored right after.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

_lock = threading.Lock()
_missing = object()


def scann_ops_pybind() -> ModuleType:
    """Return ``scann.scann_ops_pybind`` (imported once, lazily)."""
    cached = sys.modules.get("scann.scann_ops.py.scann_ops_pybind")
    if cached is not None:
        return cached
    with _lock:
        saved = sys.modules.get("tensorflow", _missing)
        sys.modules["tensorflow"] = None  # type: ignore[assignment]
        try:
            from scann import scann_ops_pybind as module
        finally:
            if saved is _missing:
                sys.modules.pop("tensorflow", None)
            else:
                sys.modules["tensorflow"] = saved  # type: ignore[assignment]
    return module
