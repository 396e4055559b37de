"""Frame extraction: sample K frames per video with PyAV seeks, in a Beam pipeline."""
