"""Helpers shared by tests and benchmarks, imported by full name (``from tests.helpers.ports import free_port``).

- ``ports``: a free loopback port and waiting for a server's ``/readyz``.
- ``factories``: real tables made from known truth (frames, manifests, embeddings + teacher labels, golden sets,
  scores).
- ``checkpoints``: tiny model checkpoints (a TorchScript/ONNX frames + text scorer, a distilled student, random
  CLIP/SigLIP directories).
- ``cli``: the in-process ``silverset`` runner fixture.

Nothing here reaches the network. Benchmarks import these from the repository root (``python -m benchmarks.<name>``).
"""
