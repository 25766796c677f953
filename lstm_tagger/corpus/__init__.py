"""Corpora: CoNLL-U and word<TAB>tag files, treebank sentences and raw text, vocabularies, word vectors, downloads."""
