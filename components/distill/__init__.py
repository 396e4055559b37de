"""Distill a student on precomputed embeddings from the teacher's soft labels; export TorchScript + ONNX with a digest."""
