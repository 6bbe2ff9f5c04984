"""`Tagger`: the user's handle on a trained model. Words (or raw text) in, labels per word out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import Sentence, Span, decode_spans, sentences_from_text
from .bundle import ModelBundle, check_engine
from .exits import ExitPolicy, run_policy
from .runtime import check_runtime
from .model import MultiExitTagger


@dataclass
class TaggedSentence:
    """One sentence's result: a label, a confidence and an exit layer per word, plus spans."""

    words: list[str]
    labels: list[str]
    confidence: list[float]
    exit_layers: list[int]
    spans: list[Span] | None = None
    source: Sentence | None = field(default=None, repr=False)


class Tagger:
    """Tag lists of words or raw texts in batches with a `MultiExitTagger` under an `ExitPolicy`.

    The default policy runs full depth. `exit_layer=k` in `tag` is a shorthand for a static
    exit: every word is labelled by exit k and layers above k are never computed.
    """

    def __init__(self, model: MultiExitTagger, *, policy: ExitPolicy | None = None, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.policy = policy or ExitPolicy()
        self.batch_size = batch_size

    @classmethod
    def load(
        cls, path: str | Path, *, device: str | torch.device = "cpu", policy: ExitPolicy | None = None,
        batch_size: int = 32, quantize: str | None = None, preset: str | None = None, runtime: str | None = "auto",
    ) -> Tagger:
        """`open_tagger` as a constructor: `Tagger.load("en-ner", preset="balanced")`."""
        return open_tagger(path, device=device, policy=policy, batch_size=batch_size, quantize=quantize, preset=preset,
                           runtime=runtime)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def tag(
        self,
        sentences: Sequence[Sequence[str]] | Sequence[Sentence],
        *,
        policy: ExitPolicy | None = None,
        exit_layer: int | None = None,
    ) -> list[TaggedSentence]:
        """Label every word of every sentence (word lists or `Sentence`s), in input order."""
        items = [s if isinstance(s, Sentence) else Sentence(list(s)) for s in sentences]
        for item in items:
            for i, word in enumerate(item.words):
                if not isinstance(word, str) or not word.strip():
                    raise ValueError(f"{item.where(i)}: word {i} is empty or not a string: {word!r}")
        if exit_layer is not None:
            policy = ExitPolicy.static(exit_layer)
        run = run_policy(self.model, [s.words for s in items], policy or self.policy, batch_size=self.batch_size)
        results = []
        for item, out in zip(items, run.sentences):
            labels = out.labels(self.model)
            spans = decode_spans(labels, self.model.config.scheme) if self.model.config.scheme else None
            results.append(
                TaggedSentence(item.words, labels, out.confidence.tolist(), out.exit_layer.tolist(), spans, item)
            )
        return results

    def tag_stream(
        self,
        sentences: Iterable[Sequence[str]] | Iterable[Sentence],
        *,
        policy: ExitPolicy | None = None,
        exit_layer: int | None = None,
        chunk_size: int | None = None,
    ) -> Iterator[TaggedSentence]:
        """`tag` over a stream of any length: reads `chunk_size` sentences (default 32 batches),
        tags them (length-sorted into batches inside the chunk) and yields them in input order,
        so memory stays bounded and output order equals input order."""
        size = chunk_size or 32 * self.batch_size
        if size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        iterator = iter(sentences)
        while chunk := list(islice(iterator, size)):
            yield from self.tag(chunk, policy=policy, exit_layer=exit_layer)

    def tag_text(
        self, text: str, *, nlp=None, policy: ExitPolicy | None = None, exit_layer: int | None = None
    ) -> list[TaggedSentence]:
        """Split raw text into sentences and words with spaCy (see `seqexit.data.text`), then tag."""
        return self.tag(sentences_from_text(text, nlp=nlp), policy=policy, exit_layer=exit_layer)


def open_tagger(
    name_or_path: str | Path, *, preset: str | None = None, policy: ExitPolicy | None = None,
    quantize: str | None = None, device: str | torch.device = "cpu", batch_size: int = 32, runtime: str | None = "auto",
) -> Tagger:
    """A `Tagger` for a model folder or a shipped model's name (`open_tagger("en-ner")`).

    preset: a calibrated policy by name (from the int8 presets when quantize="int8"); or give a
    `policy`; neither: full depth. quantize="int8" runs the encoder on int8 kernels (CPU only;
    see `seqexit.quantize`). runtime: what runs the layers, 'auto' (ONNX Runtime where it
    measures clearly faster on this CPU, else torch), 'torch' or 'onnx' (see `seqexit.runtime`)."""
    check_engine(quantize, device)  # before looking for the model: a usage error comes first
    check_runtime(runtime)
    opened = ModelBundle.find(name_or_path).open(preset=preset, policy=policy, quantize=quantize, device=device,
                                                 runtime=runtime)
    return Tagger(opened.runner, policy=opened.policy, batch_size=batch_size)
