"""Scoring: tag metrics, the CoNLL 2018 metrics, the tag-score report and its plots."""
