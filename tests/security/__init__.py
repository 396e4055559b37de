"""Security tests: clean errors, fuzzing, output folders, the OIDC fake and the serving soak."""
