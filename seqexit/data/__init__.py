"""Data layer: files -> `Sentence`s (words + tags in the internal IOB2 scheme); the writers that
turn them back into files are in `seqexit.output`."""

from .conll import read_conll
from .conllu import read_conllu
from .errors import DataError
from .formats import FORMATS, read_file
from .hf import from_hf_dataset, to_hf_dataset
from .jsonl import read_jsonl
from .labels import label_set
from .schemes import INTERNAL_SCHEME, SCHEMES, Span, convert, decode_spans, detect_scheme, encode_spans
from .sentence import Sentence
from .stats import CorpusStats, corpus_stats
from .text import read_text, sentences_from_text

__all__ = [
    "CorpusStats",
    "DataError",
    "FORMATS",
    "INTERNAL_SCHEME",
    "SCHEMES",
    "Sentence",
    "Span",
    "convert",
    "corpus_stats",
    "decode_spans",
    "detect_scheme",
    "encode_spans",
    "from_hf_dataset",
    "label_set",
    "read_conll",
    "read_conllu",
    "read_file",
    "read_jsonl",
    "read_text",
    "sentences_from_text",
    "to_hf_dataset",
]
