"""A loaded, verified index version: restricted search by vector or by a user's history."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from silverset.components.common.artifacts import IndexManifest, read_index_manifest
from silverset.components.common.digest import sha256_tree
from silverset.components.common.errors import SilversetInputError

from . import ann
from .build import DIGEST_EXCLUDE, FORMAT_VERSION, vectors_of


class IndexRefused(SilversetInputError):
    """An index folder that must not be served (corrupt, mismatched, failed self-check)."""


def load_verified(directory: str | Path, *, attribute: str | None = None) -> "LoadedIndex":
    """Load ``directory`` with its content digest checked and pass the self-check (search known vectors).

    Raises IndexRefused naming the folder and the problem; the same checks the server runs before serving.
    """
    try:
        index = LoadedIndex(directory, verify_digest=True, expect_attribute=attribute)
        index.self_check()
    except IndexRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - a manifest missing fields is as unservable as a corrupt file
        raise IndexRefused(f"index '{directory}'", f"cannot be served: {type(exc).__name__}: {exc}") from None
    return index


@dataclass(frozen=True)
class Hit:
    video_id: str
    score: float


@dataclass(frozen=True)
class HistoryProfile:
    """A user's history seen through one attribute: affinity in [0, 1] and mean vector float32 [d].

    ``probabilities`` float32 [known]: the student's scores of the known history videos, in history order.
    """

    affinity: float
    vector: np.ndarray | None
    known: int
    probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class TriggerDecision:
    """Whether restricted retrieval triggers for a history, the affinity behind it, and which trigger decided."""

    triggered: bool
    affinity: float
    source: str  # "rule" | "model"


class LoadedIndex:
    """One index version in memory: ScaNN searcher, vocabulary ids, and the history lookup."""

    def __init__(self, directory: str | Path, *, verify_digest: bool = True, expect_attribute: str | None = None):
        directory = Path(directory)
        where = f"index '{directory}'"
        self.directory = directory
        try:
            self.index_manifest: IndexManifest = read_index_manifest(directory)
        except SilversetInputError as exc:
            raise IndexRefused(exc.input_name, exc.problem) from None
        # The manifest as written, for readers that index it by key (the server's /v1/indexes and metrics).
        self.manifest = self.index_manifest.model_dump(mode="json")
        m = self.manifest
        if m.get("format_version") != FORMAT_VERSION:
            raise IndexRefused(where, f"format_version {m.get('format_version')!r}, this server reads {FORMAT_VERSION}")
        if expect_attribute is not None and m.get("attribute") != expect_attribute:
            raise IndexRefused(where, f"is for attribute {m.get('attribute')!r}, expected {expect_attribute!r}")
        if verify_digest:
            actual = sha256_tree(directory, exclude=DIGEST_EXCLUDE)
            if actual != m.get("digest"):
                raise IndexRefused(
                    where, f"content digest {actual[:12]} does not match manifest {str(m.get('digest'))[:12]}"
                )
        try:
            self.vocabulary_ids = np.asarray(
                pq.read_table(directory / "vocabulary.parquet").column("video_id").to_pylist(), dtype=object
            )
            history = pq.read_table(directory / "history.parquet")
            self.searcher = ann.load_searcher(directory / "scann")
        except Exception as exc:  # noqa: BLE001 - any unreadable part means the version is refused
            raise IndexRefused(where, f"cannot be loaded: {type(exc).__name__}: {exc}") from None
        if len(self.vocabulary_ids) != m["count"]:
            raise IndexRefused(where, f"vocabulary has {len(self.vocabulary_ids)} rows, manifest says {m['count']}")
        self.history_vectors = vectors_of(history)
        if self.history_vectors.shape[1] != m["dimensions"]:
            raise IndexRefused(
                where,
                f"history vectors have {self.history_vectors.shape[1]} dimensions, manifest says {m['dimensions']}",
            )
        self.history_probability = history.column("probability").to_numpy()
        self.history_row = {vid: i for i, vid in enumerate(history.column("video_id").to_pylist())}
        self.vocabulary_set = set(self.vocabulary_ids.tolist())
        params = m["parameters"]
        self.leaves_to_search = params["num_leaves_to_search"] if params["algorithm"] == "tree_ah" else None
        # Reorder depth the build's tuning chose (0/absent: the searcher's built default).
        self.pre_reorder = int(params.get("pre_reorder_num_neighbors") or 0) if params["algorithm"] == "tree_ah" else 0
        self.min_probability = float(m["vocabulary_rule"]["min_probability"])
        self.affinity_kind = m["serving"]["affinity"]
        self.trigger_threshold = float(m["serving"]["trigger_threshold"])
        self.attribute_version = int(m["attribute_version"]) if m.get("attribute_version") is not None else None
        self.affinity_model = None  # the learned trigger when the manifest names one, else the rule decides
        if m["serving"].get("affinity_model"):
            from silverset.components.abtest.affinity import AffinityModel

            try:
                self.affinity_model = AffinityModel.load(m["serving"]["affinity_model"])
            except SilversetInputError as exc:  # a named trigger that cannot load must not silently become the rule
                raise IndexRefused(where, f"serving.affinity_model: {exc}") from None

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def dimensions(self) -> int:
        return int(self.manifest["dimensions"])

    def self_check(self, *, samples: int = 64, k: int = 10, min_self_hit: float = 0.75) -> None:
        """Refuse the version unless searching vocabulary vectors finds those same videos.

        Vectors of ``samples`` vocabulary videos are looked up in the history table and searched;
        each video should be in its own top-k (exact duplicates may tie, hence k, not 1). This is an integrity
        check run before serving (wrong ids, a searcher of another vocabulary, a broken load score near 0), not
        the quality bar: the build measures recall and self-hit on held-out rows. With 16 probes at 0.9 a sound
        tree index whose self-hit is about 0.9 was refused now and then (14 of 16 found themselves in a CI run).
        """
        step = max(1, len(self.vocabulary_ids) // samples)
        probe_ids = self.vocabulary_ids[::step][:samples]
        queries = self.history_vectors[[self.history_row[v] for v in probe_ids]]
        want = min(k, len(self.vocabulary_ids))
        rows = ann.search_batched(
            self.searcher,
            queries,
            want,
            leaves_to_search=self.leaves_to_search,
            pre_reorder_num_neighbors=max(self.pre_reorder, want) if self.pre_reorder else None,
        )
        if rows.size and (rows.max() >= len(self.vocabulary_ids) or rows.min() < 0):
            raise IndexRefused(f"index '{self.directory}'", "self-check: searcher returned ids outside the vocabulary")
        hit = np.mean([vid in set(self.vocabulary_ids[r].tolist()) for vid, r in zip(probe_ids, rows)])
        if hit < min_self_hit:
            raise IndexRefused(
                f"index '{self.directory}'",
                f"self-check: only {hit:.0%} of vocabulary videos find themselves in top-{k}",
            )

    def tune_leaves_to_search(
        self, *, target: float, queries: int = 100, k: int = 10, tolerance: float = 0.005, seed: int = 0
    ) -> dict:
        """Serve with fewer tree leaves per query when recall@k allows it (tree indexes only).

        The build tunes ``num_leaves_to_search`` upward only, from ~5% of the leaves; on well-clustered
        vectors far fewer leaves find the same neighbours at a fraction of the CPU per query. This halves
        the leaves while recall@k on ``queries`` history vectors, against exact search over the
        vocabulary (numpy), stays >= ``target`` and within ``tolerance`` of the recall at the
        manifest's setting, never below 1% of the leaves (queries unlike the history sample, such as
        text-tower vectors, keep some margin). Returns {"leaves_to_search", "recall", "trials"};
        changes nothing for brute-force indexes.
        """
        if not self.leaves_to_search:
            return {"leaves_to_search": None, "recall": None, "trials": []}
        tuning = (self.manifest.get("build") or {}).get("tuning") or {}
        if tuning.get("mode") == "grid":  # the build measured on held-out history queries; this would overstate recall
            return {
                "leaves_to_search": self.leaves_to_search,
                "recall": (tuning.get("chosen") or {}).get("recall"),
                "trials": [],
                "tuned_at_build": True,
            }
        n_vocab = len(self.vocabulary_ids)
        k = min(k, n_vocab)
        rng = np.random.default_rng(seed)
        sample = self.history_vectors[
            np.sort(rng.choice(len(self.history_vectors), size=min(queries, len(self.history_vectors)), replace=False))
        ]
        # Exact top-k over the vocabulary's rows of the history table, in blocks of 32 queries (32 x n floats).
        try:
            vocab_history_rows = np.fromiter(
                (self.history_row[v] for v in self.vocabulary_ids), dtype=np.int64, count=n_vocab
            )
        except KeyError as exc:
            raise IndexRefused(
                f"index '{self.directory}'", f"vocabulary video {exc.args[0]!r} is missing from history.parquet"
            ) from None
        in_vocab = np.zeros(len(self.history_vectors), dtype=bool)
        in_vocab[vocab_history_rows] = True
        vocab_row_of = np.full(len(self.history_vectors), -1, dtype=np.int64)
        vocab_row_of[vocab_history_rows] = np.arange(n_vocab)
        truth = np.empty((len(sample), k), dtype=np.int64)
        for start in range(0, len(sample), 32):
            scores = sample[start : start + 32] @ self.history_vectors.T
            scores[:, ~in_vocab] = -np.inf
            truth[start : start + 32] = vocab_row_of[np.argpartition(-scores, k - 1, axis=1)[:, :k]]

        def recall_at(leaves: int) -> float:
            found = ann.search_batched(self.searcher, sample, k, leaves_to_search=leaves)
            return ann.recall_at_k(found, truth)

        best, baseline = self.leaves_to_search, recall_at(self.leaves_to_search)
        floor = max(target, baseline - tolerance)
        trials = [{"leaves_to_search": best, "recall": baseline}]
        best_recall, leaves = baseline, best // 2
        min_leaves = max(1, -(-int(self.manifest["parameters"]["num_leaves"]) // 100))
        while leaves >= min_leaves and baseline >= target:
            recall = recall_at(leaves)
            trials.append({"leaves_to_search": leaves, "recall": recall})
            if recall < floor:
                break
            best, best_recall, leaves = leaves, recall, leaves // 2
        self.leaves_to_search = best
        return {"leaves_to_search": best, "recall": best_recall, "trials": trials}

    def search(self, vector: np.ndarray, k: int, *, exclude: frozenset[str] = frozenset()) -> list[Hit]:
        """Top-k vocabulary videos for ``vector`` (float32 [d]) by dot product, excluded ids removed."""
        want = min(k + len(exclude & self.vocabulary_set), len(self.vocabulary_ids))
        rows, scores = self.searcher.search(
            np.asarray(vector, dtype=np.float32),
            final_num_neighbors=want,
            pre_reorder_num_neighbors=max(self.pre_reorder, want) if self.pre_reorder else -1,
            leaves_to_search=self.leaves_to_search if self.leaves_to_search else -1,
        )
        hits = []
        for row, score in zip(rows, scores):
            vid = self.vocabulary_ids[row]
            if vid in exclude:
                continue
            hits.append(Hit(vid, float(score)))
            if len(hits) == k:
                break
        return hits

    def profile(self, history_ids: list[str]) -> HistoryProfile:
        """Affinity and mean vector of the known ids in a user's history (unknown ids are ignored).

        affinity = share of known history videos in the vocabulary rule (``share``) or their mean
        student probability (``mean_score``).
        """
        rows = [self.history_row[v] for v in history_ids if v in self.history_row]
        if not rows:
            return HistoryProfile(0.0, None, 0, self.history_probability[:0])
        probs = self.history_probability[rows]
        return HistoryProfile(self.affinity_of(probs), self.history_vectors[rows].mean(axis=0), len(rows), probs)

    @property
    def trigger_source(self) -> str:
        return "model" if self.affinity_model is not None else "rule"

    def decide_trigger(self, probabilities: np.ndarray) -> TriggerDecision:
        """Trigger for a history's student probabilities (float [n], oldest first): the learned model, else the rule.

        Model: its probability of engagement against its own threshold. Rule: ``affinity_of`` against
        ``serving.trigger_threshold``. An empty history never triggers (there is no query to search with).
        """
        if self.affinity_model is not None:
            model = self.affinity_model
            affinity = model.probability(model.features(probabilities, self.min_probability))
            return TriggerDecision(bool(len(probabilities)) and affinity >= model.threshold, affinity, "model")
        affinity = self.affinity_of(probabilities) if len(probabilities) else 0.0
        return TriggerDecision(bool(len(probabilities)) and affinity >= self.trigger_threshold, affinity, "rule")

    def affinity_of(self, probabilities: np.ndarray) -> float:
        if self.affinity_kind == "share":
            return float(np.mean(probabilities >= self.min_probability))
        return float(np.mean(probabilities))
