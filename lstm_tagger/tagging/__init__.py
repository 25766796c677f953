"""Tagging with a trained model: the batching engine, raw text through the pipeline, input/output formats, export."""
