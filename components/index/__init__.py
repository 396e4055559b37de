"""Restricted vocabulary, ScaNN index build with a recall check, and the per-attribute index server."""
