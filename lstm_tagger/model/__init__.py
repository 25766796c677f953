"""The tagger network and its parts: recurrent cells, character encoders, the CRF, the optimiser."""
