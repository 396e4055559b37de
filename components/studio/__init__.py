"""Annotation studio: embedding search, active-learning feeds, live scores and bandit feed selection for golden sets."""
