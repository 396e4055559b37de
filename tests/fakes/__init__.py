"""Loopback fakes of external services (Gemini, KFP API, Kubernetes API) speaking their real protocols."""
