"""The segmenter: raw text -> sentences, tokens and multiword tokens, its training and its child processes."""
