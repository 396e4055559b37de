"""Tests that the TensorRT code uses no API removed from the pinned TensorRT."""
