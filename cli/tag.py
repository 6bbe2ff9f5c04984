"""`seqexit tag`: label the words of a file and write CoNLL or JSONL."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from seqexit import Tagger
from seqexit.data import write_conll, write_jsonl
from seqexit.data.formats import read_file

from .errors import friendly
from .policy import EXIT_LAYER, MIN_LAYER, MODE, THRESHOLD, WINDOW, build_policy


@friendly
def tag(
    input: Path = typer.Argument(..., help="Raw text (.txt), CoNLL, CoNLL-U or JSONL file."),
    model: Path = typer.Option(..., "--model", "-m", help="Model folder."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file (default: stdout)."),
    format: str = typer.Option("auto", help="Input format: auto, text, conll, conllu, jsonl."),
    output_format: str = typer.Option("conll", help="conll or jsonl."),
    scheme: str = typer.Option("iob2", help="Span scheme to write: iob1, iob2, iobes, bilou."),
    mode: str = MODE,
    threshold: str = THRESHOLD,
    window: int = WINDOW,
    min_layer: int = MIN_LAYER,
    exit_layer: int | None = EXIT_LAYER,
    batch_size: int = typer.Option(32),
) -> None:
    """Tag INPUT; every input word gets exactly one label, in input order."""
    policy = build_policy(mode, threshold, window, min_layer, exit_layer)
    tagger = Tagger.load(model, policy=policy, batch_size=batch_size)
    sentences = read_file(input, format, labelled=False)
    results = tagger.tag(sentences)
    labels = [r.labels for r in results]
    target_scheme = scheme if tagger.model.config.scheme else None
    out = output if output else sys.stdout  # writers open a path only after every check passes
    if output_format == "jsonl":
        write_jsonl(sentences, labels, out, scheme=target_scheme)
    elif output_format == "conll":
        write_conll(sentences, labels, out, scheme=target_scheme)
    else:
        raise ValueError(f"unknown output format {output_format!r}; choose conll or jsonl")
