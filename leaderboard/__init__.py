"""Predictions-file validation, scoring against held-out labels, the results store, the report."""
