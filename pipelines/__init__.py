"""Silverset pipelines: the attribute-promotion pipeline, its local and cluster runners, and the CLI."""
