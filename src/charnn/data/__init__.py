"""Text in: reading files and folders, the vocabulary, the encoded corpus and its batches.

The names most callers need are importable from here, e.g. ``from charnn.data import load_text, Batches``.
"""
from .text import (DEFAULT_CORPUS_NAME, Batches, DataError, checksum, corpus_files, default_corpus_path,  # noqa: F401
                   encode_corpus, hold_out, load_bytes_as_text, load_text, read_corpus, split, split3,
                   split_sizes)
