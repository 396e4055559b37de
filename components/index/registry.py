"""The served indexes: attribute -> LoadedIndex, swapped atomically when the pointers or pins name a new version.

``IndexRegistry.refresh`` loads whatever ``<attribute>/CURRENT`` (or the pod's pinned versions, ``pins.py``) names,
and swaps a version in only after it loaded, matched its manifest digest and passed a self-check; until then, and
when a version is refused (once, for good), the old one keeps answering. ``readiness`` is the /readyz body. No
HTTP here: the server (``server.py``) calls ``refresh`` off the event loop and reads ``get`` per request.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from silverset.components.common.errors import SilversetInputError

from . import pins, pointer
from .build import MANIFEST_FILE
from .loaded import IndexRefused, LoadedIndex

log = logging.getLogger(__name__)


class IndexRegistry:
    """attribute -> LoadedIndex, swapped atomically (a dict assignment under a lock).

    Three ways to say what to serve: one index folder (``static``); a serving root whose
    ``<attribute>/CURRENT`` pointers name the versions; or a serving root plus ``pinned_file``, the
    pod's downwardAPI annotations file, whose ``index.silverset.dev/<attribute>`` pins name exactly the
    versions to serve (CURRENT is then ignored, and attributes no longer pinned are dropped). When a pin
    changes in place, the old version answers until the new one has loaded, while /readyz says 503.
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        verify_digest: bool = True,
        tune_leaves: bool = True,
        pinned_file: str | Path | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.static = (self.index_dir / MANIFEST_FILE).is_file()
        self.pinned_file = Path(pinned_file) if pinned_file is not None else None
        if self.static and self.pinned_file is not None:
            raise SilversetInputError(
                "--pinned-versions", f"pins versions under a serving root; '{index_dir}' is one index folder"
            )
        self.verify_digest = verify_digest
        self.tune_leaves = tune_leaves
        self.served_with: dict[str, dict] = {}  # attribute -> search parameters tuned at load
        self._live: dict[str, LoadedIndex] = {}
        self._lock = threading.Lock()
        self.refused: dict[str, str] = {}  # "attribute/version" -> reason, never retried
        self.wanted: dict[str, str] = {}  # attribute -> version the pointers or pins name at the last refresh
        self.waiting: dict[str, str] = {}  # attribute -> why its wanted version is not live
        self.source_problem: str | None = None  # why the pins could not be read at the last refresh
        self.fallback: dict[str, dict] = {}  # attribute -> {"serving", "instead_of", "reason"}: PREVIOUS serves
        self.swaps = 0
        self._refreshing = threading.Lock()  # the watcher and /v1/admin/reload never load the same version twice
        self.on_swap = lambda attribute, version: None
        self.on_refuse = lambda attribute, version, reason: None

    @property
    def mode(self) -> str:
        return "static" if self.static else "pinned" if self.pinned_file is not None else "current"

    def get(self, attribute: str) -> LoadedIndex | None:
        return self._live.get(attribute)

    def live_versions(self) -> dict[str, str]:
        return {a: idx.version for a, idx in self._live.items()}

    def _install(self, attribute: str, candidate: Path, version: str) -> str | None:
        """Load, check and swap in ``version``; return why not (None once it serves)."""
        key = f"{attribute}/{version}"
        if key in self.refused:
            return f"version {version} was refused: {self.refused[key]}"
        if not self.static and not (candidate / MANIFEST_FILE).is_file():
            return f"version {version} is not published at '{candidate}' yet"  # retried on the next poll
        try:
            loaded = LoadedIndex(candidate, verify_digest=self.verify_digest, expect_attribute=attribute)
            if loaded.version != version:
                raise IndexRefused(
                    f"index '{candidate}'",
                    f"manifest version {loaded.version!r} does not match the pinned or pointed version {version!r}",
                )
            current = self._live.get(attribute)
            if current is not None and current.dimensions != loaded.dimensions:
                raise IndexRefused(
                    f"index '{candidate}'", f"{loaded.dimensions} dimensions, live version has {current.dimensions}"
                )
            loaded.self_check()
            target = float(loaded.manifest["serving"]["recall_target"])
            tuning = loaded.tune_leaves_to_search(target=target) if self.tune_leaves else None
        except Exception as exc:  # noqa: BLE001 - any unservable version is refused once; others keep refreshing
            problem = exc.problem if isinstance(exc, IndexRefused) else f"cannot be served: {type(exc).__name__}: {exc}"
            self.refused[key] = problem
            log.error("refused index %s: %s", key, problem)
            self.on_refuse(attribute, version, problem)
            return f"version {version} was refused: {problem}"
        with self._lock:
            new = dict(self._live)
            new[attribute] = loaded
            self._live = new
            self.swaps += 1
            if tuning is not None:
                self.served_with[attribute] = tuning
        log.info("serving %s version %s (leaves_to_search %s)", attribute, version, loaded.leaves_to_search)
        self.on_swap(attribute, version)
        return None

    def _wanted_now(self) -> dict[str, str]:
        if self.pinned_file is not None:
            return pins.read_pinned_versions(self.pinned_file)
        wanted = {}
        for attribute in pointer.attributes(self.index_dir):
            version = pointer.read_pointer(self.index_dir, attribute)
            if version is not None:
                wanted[attribute] = version
        return wanted

    def refresh(self) -> None:
        """Load whatever the pins or pointers name now (or the static folder, once); blocking, so off the event loop."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        if self.static:
            if not self._live:
                m = LoadedIndex(self.index_dir, verify_digest=self.verify_digest).manifest
                self._install(m["attribute"], self.index_dir, m["version"])
            return
        try:
            wanted = self._wanted_now()
            self.source_problem = None
        except SilversetInputError as exc:  # unreadable pins: keep serving what is live, report unready
            self.source_problem = str(exc)
            log.error("%s", exc)
            return
        waiting = {}
        for attribute, version in sorted(wanted.items()):
            current = self._live.get(attribute)
            if current is not None and current.version == version:
                continue
            reason = self._install(attribute, pointer.version_dir(self.index_dir, attribute, version), version)
            if reason is not None:
                waiting[attribute] = reason
                self._fall_back(attribute, version, reason)
            else:
                self.fallback.pop(attribute, None)
        if self.pinned_file is not None and set(self._live) - set(wanted):
            with self._lock:
                dropped = sorted(set(self._live) - set(wanted))
                self._live = {a: idx for a, idx in self._live.items() if a in wanted}
            log.info("no longer pinned, dropped: %s", ", ".join(dropped))
        self.wanted, self.waiting = wanted, waiting

    def _fall_back(self, attribute: str, version: str, reason: str) -> None:
        """With nothing live for ``attribute`` (a restart onto a broken CURRENT), serve its PREVIOUS pointer's version.

        Deploy only ever writes a verified version to PREVIOUS; it is checked here again like any other.
        """
        if self.mode != "current" or attribute in self._live:
            return
        previous = pointer.read_pointer(self.index_dir, attribute, pointer.PREVIOUS)
        if previous is None or previous == version:
            return
        if self._install(attribute, pointer.version_dir(self.index_dir, attribute, previous), previous) is None:
            self.fallback[attribute] = {"serving": previous, "instead_of": version, "reason": reason}
            log.warning(
                "%s: serving PREVIOUS version %s because CURRENT %s cannot be served: %s",
                attribute,
                previous,
                version,
                reason,
            )

    def readiness(self) -> dict:
        """The /readyz body; ``ready`` is true when traffic may come here.

        Pinned: every pinned version is loaded and self-checked. CURRENT pointers or one folder: some
        version serves (a refused new version leaves the old one serving).
        """
        live = self.live_versions()
        body: dict = {"ready": False, "mode": self.mode, "live": live}
        if self.mode == "pinned":
            body["pinned"] = self.wanted
        body["waiting"] = self.waiting
        body["refused"] = self.refused
        if self.fallback:
            body["fallback"] = self.fallback
        if self.source_problem is not None:
            body["reason"] = self.source_problem
        elif self.mode == "pinned" and not self.wanted:
            body["reason"] = (
                f"no index version is pinned in '{self.pinned_file}' (annotations {pins.ANNOTATION_PREFIX}<attribute>)"
            )
        elif self.mode == "pinned" and any(live.get(a) != v for a, v in self.wanted.items()):
            body["reason"] = "pinned versions not serving yet: " + "; ".join(
                f"{a}: {self.waiting.get(a, 'loading')}" for a, v in sorted(self.wanted.items()) if live.get(a) != v
            )
        elif not live:
            body["reason"] = (
                f"serving root '{self.index_dir}' has no {pointer.CURRENT} pointer yet"
                if not self.wanted
                else "no version serves yet: " + "; ".join(f"{a}: {r}" for a, r in sorted(self.waiting.items()))
            )
        else:
            body["ready"] = True
        return body
