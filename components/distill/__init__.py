"""Distill a student on precomputed embeddings from the teacher's soft labels.

Exports TorchScript + ONNX with a digest.
"""
