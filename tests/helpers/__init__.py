"""Helpers shared by tests and benchmarks, imported by full name (``from tests.helpers.ports import free_port``).

- ``ports``: a free loopback port, waiting for a server process's ``/readyz``, an ASGI app served in a thread.
- ``factories``: real tables made from known truth (frames, videos, manifests, embeddings + teacher labels, golden
  sets, scores, incremental-run corpora and specs).
- ``checkpoints``: tiny model checkpoints (the local teacher's TorchScript/ONNX scorer, a distilled student, random
  CLIP/SigLIP directories).
- ``indexes``: clustered embeddings, student scores and built brute-force indexes for serving tests.
- ``downward_api`` / ``kubelet``: the kubelet's side of pinned serving against the loopback Kubernetes API.
- ``cli``: the in-process ``cli`` fixture (a plugin of the root conftest) and ``run_silverset`` in a fresh process.
- ``locks``: a settable clock and a two-process race for the run lock; ``fuzz``: Hypothesis settings.

Nothing here reaches the network. Benchmarks import these from the repository root (``python -m benchmarks.<name>``).
Loopback fakes of external services stay in ``tests.fakes``.
"""
