"""Benchmarks: speed and memory of a tagger on this machine, FLOPs, the accuracy/speed frontier."""
