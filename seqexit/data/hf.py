"""The `datasets` bridge: sentences to a `datasets.Dataset` and back. Never touches the network."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import DataError
from .labels import normalise_tags
from .sentence import Sentence


def to_hf_dataset(sentences: Sequence[Sentence]):
    """A `datasets.Dataset` with columns tokens, tags (when every sentence has them), source, lines."""
    import datasets

    columns: dict[str, list] = {
        "tokens": [s.words for s in sentences],
        "source": [s.source or "" for s in sentences],
        "lines": [s.lines or [] for s in sentences],
    }
    if sentences and all(s.tags is not None for s in sentences):
        columns["tags"] = [s.tags for s in sentences]
    return datasets.Dataset.from_dict(columns)


def from_hf_dataset(
    dataset, *, tokens_column: str = "tokens", tags_column: str | None = "auto", scheme: str | None = "auto",
    strict: bool = False, name: str | None = None,
) -> list[Sentence]:
    """Sentences from a dataset with a token column and a tag column of strings or ClassLabel ids
    (like the hub's `conll2003` `ner_tags`). tags_column="auto" takes `tags`, `ner_tags`,
    `pos_tags` or `labels`, the first present; None reads tokens only. Row i is "line" i + 1."""
    source = f"<datasets:{name or getattr(dataset, 'info', None) and dataset.info.dataset_name or 'dataset'}>"
    if tokens_column not in dataset.column_names:
        raise DataError(source, None, f"no column {tokens_column!r} (columns: {', '.join(dataset.column_names)})")
    if tags_column == "auto":
        tags_column = next((c for c in ("tags", "ner_tags", "pos_tags", "labels") if c in dataset.column_names), None)
    elif tags_column is not None and tags_column not in dataset.column_names:
        raise DataError(source, None, f"no column {tags_column!r} (columns: {', '.join(dataset.column_names)})")
    names = _class_names(dataset.features[tags_column]) if tags_column else None
    sentences = []
    for row, example in enumerate(dataset, start=1):
        words = [str(w) for w in example[tokens_column] if w is not None]
        if len(words) != len(example[tokens_column]) or not all(w.strip() for w in words):
            raise DataError(source, row, "empty or missing token")
        tags = None
        if tags_column:
            tags = [_tag_name(t, names, source, row) for t in example[tags_column]]
            if len(tags) != len(words):
                raise DataError(source, row, f"{len(words)} tokens but {len(tags)} tags")
        if not words:
            continue
        sentences.append(Sentence(words, tags, source, [row] * len(words)))
    if tags_column:
        normalise_tags(sentences, scheme, strict=strict, path=source)
    return sentences


def _class_names(feature) -> list[str] | None:
    """Label names of a Sequence(ClassLabel) / List(ClassLabel) feature, else None."""
    inner = getattr(feature, "feature", None)
    return list(inner.names) if inner is not None and hasattr(inner, "names") else None


def _tag_name(tag: int | str | None, names: list[str] | None, source: str, row: int) -> str:
    """A tag as a string; a missing one (None, or ClassLabel's -1) is an error, not a label:
    Python's names[-1] would otherwise quietly read it as the last class."""
    if names is None:
        if tag is None:
            raise DataError(source, row, "a token has no tag (None)")
        return str(tag)
    if not isinstance(tag, int) or not 0 <= tag < len(names):
        raise DataError(source, row, f"tag id {tag!r} is not one of the {len(names)} ClassLabel ids (-1 means unlabelled)")
    return names[tag]
