"""`seqexit stats`: what a labelled file holds, and where its tags break their scheme."""

from __future__ import annotations

from pathlib import Path

import typer

from seqexit.data.stats import STATS_FORMATS, CorpusStats, corpus_stats

from .errors import ON_BAD_LINE, UsageError, bad_lines, friendly
from .json_output import print_json


@friendly
def stats(
    file: Path = typer.Argument(..., help="Labelled file (CoNLL, CoNLL-U or JSONL); - for stdin (CoNLL)."),
    format: str = typer.Option("auto", help=f"Input format: auto, {', '.join(STATS_FORMATS)}."),
    label_column: int = typer.Option(-1, help="CoNLL: index of the tag column (default the last)."),
    xpos: bool = typer.Option(False, help="CoNLL-U: count XPOS instead of UPOS."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the report."),
    on_bad_line: str = ON_BAD_LINE,
) -> None:
    """Count sentences, tokens, labels and entities per type; name the tag scheme found (IOB1,
    IOB2, IOBES, BILOU, or none for per-word tags like POS) and list every tag that breaks it
    as file:line. Labels are counted as written in the file, not converted. An empty file has
    all counts zero; with --on-bad-line warn/skip the counts are of the sentences kept.

    Example: seqexit stats data/eng.train --json
    """
    if format not in ("auto", *STATS_FORMATS):
        raise UsageError(f"--format must be auto or one of {', '.join(STATS_FORMATS)}, not {format!r}")
    bad = bad_lines(on_bad_line)
    result = corpus_stats(file, format, label_column=label_column, upos=not xpos, bad_lines=bad)
    bad.finish()
    if as_json:
        print_json(result.to_dict())
    else:
        _report(str(file), result)


def _report(name: str, result: CorpusStats) -> None:
    """The human-readable report on stdout."""
    scheme = result.scheme.upper() if result.scheme else "none (per-word tags)"
    typer.echo(f"{name}: {result.sentences} sentences, {result.tokens} tokens")
    typer.echo(f"scheme: {scheme}")
    typer.echo(f"labels ({len(result.labels)}):")
    width = max((len(label) for label in result.labels), default=0)
    for label, count in result.labels.items():
        typer.echo(f"  {label:<{width}}  {count:>8}  {100 * count / result.tokens:6.2f}%")
    if result.scheme:
        typer.echo(f"entities ({sum(result.entities.values())}):")
        width = max((len(label) for label in result.entities), default=0)
        for label, count in result.entities.items():
            typer.echo(f"  {label:<{width}}  {count:>8}")
    if not result.problems:
        typer.echo("no scheme problems")
        return
    typer.echo(f"{len(result.problems)} scheme problem(s):")
    for problem in result.problems:
        where = name if problem.line is None else f"{name}:{problem.line}"
        typer.echo(f"{where}: {problem.message}")
