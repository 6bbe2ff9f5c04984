"""Data layer: files -> `Sentence`s (words + tags in the internal IOB2 scheme) and back."""

from .conll import read_conll
from .labels import label_set
from .conllu import read_conllu
from .errors import DataError
from .schemes import INTERNAL_SCHEME, SCHEMES, Span, convert, decode_spans, detect_scheme, encode_spans
from .sentence import Sentence

__all__ = [
    "DataError",
    "INTERNAL_SCHEME",
    "SCHEMES",
    "Sentence",
    "Span",
    "convert",
    "decode_spans",
    "detect_scheme",
    "encode_spans",
    "label_set",
    "read_conll",
    "read_conllu",
]
