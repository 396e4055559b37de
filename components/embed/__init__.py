"""Embeddings stage: one vector per video from its frames (visual statistics, user checkpoint) and its text (MiniLM)."""
