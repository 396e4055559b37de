"""Bulk scoring: every embedding through the student with Beam RunInference, reading Arrow RecordBatches."""
