"""Run-summary webhook and cleanup for the pipeline's exit handler."""
