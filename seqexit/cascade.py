"""A cascade (CascadeBERT, applied to sequence labeling): a smaller, faster first-stage model tags
every sentence, and only the sentences it is unsure of run on this model.

Pairing: `pair_first_stage(folder, first)` writes `cascade.json` into a model folder, naming the
first stage (a shipped model's name, or a folder); both must label with the same label set and
scheme. Opening the folder (`seqexit.bundle.ModelBundle.open`) attaches the first stage to the
runner, loaded on first use with the same device, quantization and runtime.

Routing: the first stage runs at full depth; a sentence is sent on when the normalised entropy
of its first-stage label distribution is at or above the policy's threshold for any of its
words (the test SENTEE applies at a layer, applied to a whole model; the policy's window does
not change a sentence's maximum, so it is not used). The sentences sent on run under the
policy's `then` (full depth by default) and take this model's labels; the others keep the first
stage's. A word the first stage labelled reports exit layer 0.

FLOPs: the first stage's full forward on every sentence plus this model's work on the
sentences sent on, against this model's full depth on every sentence.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .exits.engine import PolicyRun, WordExits, length_sorted_batches, owned_slices, run_policy
from .exits.halting import new_counter
from .exits.policy import ExitPolicy
from .exits.uncertainty import normalised_entropy
from .model import MultiExitTagger

CASCADE_FILE = "cascade.json"
FIRST_STAGE_DIR = "first_stage"  # where a saved copy keeps its first stage (spaCy's to_disk)


@dataclass
class FirstStage:
    """The first-stage model of a cascade: its folder, loaded on first use (`model`) with the
    engine settings of the model it feeds, or given ready (`attach_first_stage`)."""

    folder: Path | None
    quantize: str | None = None
    device: str | torch.device = "cpu"
    runtime: str | None = "torch"
    loaded: MultiExitTagger | None = field(default=None, repr=False)
    reused: tuple[tuple[tuple[str, ...], ...], FirstStageRun] | None = field(default=None, repr=False)

    @property
    def model(self) -> MultiExitTagger:
        if self.loaded is None:
            from .bundle import ModelBundle

            with torch.inference_mode(False):  # first use may be inside a run: weights must stay normal tensors
                opened = ModelBundle(self.folder).open(quantize=self.quantize, device=self.device, runtime=self.runtime)
            self.loaded = opened.runner
        return self.loaded


def check_pairing(first_labels: Sequence[str], first_scheme: str | None, labels: Sequence[str], scheme: str | None,
                  where: str) -> None:
    """A ValueError naming `where` unless the first stage labels with this model's label set and scheme."""
    if set(first_labels) != set(labels):
        missing = sorted(set(labels) ^ set(first_labels))
        raise ValueError(f"{where}: the first stage's labels differ from this model's (not in both: {', '.join(missing[:8])}); "
                         "a cascade needs models that label alike")
    if first_scheme != scheme:
        raise ValueError(f"{where}: the first stage's label scheme is {first_scheme}, this model's {scheme}")


def attach_first_stage(model: MultiExitTagger, first: MultiExitTagger | FirstStage) -> MultiExitTagger:
    """Give `model` (a model or runner) its first stage, so that policies of mode "cascade" run
    on it; a ready model is checked against `model`'s labels here, a folder when it loads."""
    if isinstance(first, MultiExitTagger):
        check_pairing(first.labels, first.config.scheme, model.labels, model.config.scheme, "cascade")
        first = FirstStage(None, loaded=first)
    model.__dict__["first_stage"] = first  # a plain attribute: not a submodule, so never in the state dict
    return model


def first_stage_of(model: MultiExitTagger) -> FirstStage | None:
    return model.__dict__.get("first_stage")


@contextmanager
def first_stage_reused(model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, batch_size: int = 32) -> Iterator[None]:
    """Within the block, cascades of `model` on exactly these `sentences` reuse one first-stage
    run (calibration scores many routing thresholds on the same data); timings taken inside
    leave the first stage out. Nothing happens for a model without a first stage."""
    stage = first_stage_of(model)
    if stage is None:
        yield
        return
    key = tuple(map(tuple, sentences))
    stage.reused = (key, run_first_stage(stage.model, sentences, batch_size=batch_size))
    try:
        yield
    finally:
        stage.reused = None


# --- the pairing file -----------------------------------------------------------------------------


def pair_first_stage(folder: str | Path, first: str | Path) -> Path:
    """Write `folder`/cascade.json naming `first` (a shipped model's name, kept as the name; or a
    folder, kept relative to `folder` where it can be), after checking that the two label alike.
    Returns the file written."""
    from .bundle import find_model, read_config, shipped_dir

    folder = Path(folder)
    config = read_config(folder)
    first_folder = find_model(first)
    first_config = read_config(first_folder)
    check_pairing(first_config.labels, first_config.scheme, config.labels, config.scheme, str(first_folder))
    if first_folder.resolve() == folder.resolve():
        raise ValueError(f"{folder}: a model cannot be its own first stage")
    shipped = shipped_dir()
    if shipped is not None and first_folder.resolve().parent == shipped and not Path(first).exists():
        reference = first_folder.name
    else:
        try:
            reference = os.path.relpath(first_folder.resolve(), folder.resolve())
        except ValueError:  # another drive
            reference = str(first_folder.resolve())
    path = folder / CASCADE_FILE
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps({"first_stage": reference}, indent=1) + "\n")
    os.replace(temp, path)
    return path


def copy_first_stage(model: MultiExitTagger, folder: str | Path) -> Path | None:
    """Copy `model`'s first stage into `folder`/first_stage and pair it there, so that a saved
    copy of a cascade (spaCy's `to_disk`) holds both models; None when `model` has no first
    stage. A first stage given as a ready model, not a folder, cannot be copied: ValueError."""
    stage = first_stage_of(model)
    if stage is None:
        return None
    if stage.folder is None:
        raise ValueError("this cascade's first stage was attached as a model, not a folder: save it with "
                         "seqexit.bundle.save_model and pair the folders with pair_first_stage")
    target = Path(folder) / FIRST_STAGE_DIR
    if target.resolve() != Path(stage.folder).resolve():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(stage.folder, target, ignore=shutil.ignore_patterns(".*"))
    path = Path(folder) / CASCADE_FILE
    path.write_text(json.dumps({"first_stage": FIRST_STAGE_DIR}, indent=1) + "\n")
    return path


def read_first_stage(folder: str | Path) -> Path | None:
    """The first-stage folder `folder`/cascade.json names; None without the file. A file that
    is malformed or names no model is a ValueError naming it."""
    from .bundle import find_model

    path = Path(folder) / CASCADE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable cascade file ({err})") from None
    reference = data.get("first_stage") if isinstance(data, dict) else None
    if not isinstance(reference, str) or not reference:
        raise ValueError(f"{path}: expected {{\"first_stage\": \"a model name or folder\"}}")
    local = Path(folder) / reference
    try:
        return find_model(local if local.exists() else reference)
    except FileNotFoundError as err:
        raise ValueError(f"{path}: the first stage {reference!r} cannot be found ({err})") from None


# --- running a cascade ----------------------------------------------------------------------------


@dataclass
class FirstStageRun:
    """The first stage's reading of every sentence (in input order) and its FLOPs per sentence."""

    label_ids: list[torch.Tensor]  # per sentence: (words,) long, in the first stage's label ids
    confidence: list[torch.Tensor]  # (words,) top probability
    doubt: torch.Tensor  # (sentences,) the largest normalised entropy of the sentence's words
    flops: list[int]


@torch.inference_mode()
def run_first_stage(first: MultiExitTagger, sentences: Sequence[Sequence[str]], *, batch_size: int = 32) -> FirstStageRun:
    """Full depth of `first` on word lists: labels, confidence and each sentence's doubt."""
    counter = new_counter(first)
    n = len(sentences)
    labels = [torch.zeros(len(words), dtype=torch.long) for words in sentences]
    confidence = [torch.zeros(len(words)) for words in sentences]
    doubt = torch.zeros(n)
    flops = [0] * n
    with first.adapter.running():
        for group, batch in length_sorted_batches(first, sentences, batch_size):
            logits = first(batch, exits="last")[0].float()  # (batch, words, labels)
            probs, ids = logits.softmax(-1).max(-1)
            uncertainty = normalised_entropy(logits).masked_fill(~batch.word_mask, 0.0).cpu()
            full = counter.rows_full(batch.attention_mask.sum(1), batch.word_mask.sum(1)).tolist()
            ids, probs = ids.cpu(), probs.cpu()
            for row, (sentence, chunk) in enumerate(group):
                into, take = owned_slices(chunk)
                labels[sentence][into] = ids[row, take]
                confidence[sentence][into] = probs[row, take]
                doubt[sentence] = max(float(doubt[sentence]), float(uncertainty[row, take].max()))
                flops[sentence] += full[row]
    return FirstStageRun(labels, confidence, doubt, flops)


def run_cascade(
    model: MultiExitTagger, sentences: Sequence[Sequence[str]], policy: ExitPolicy, *, batch_size: int = 32,
) -> PolicyRun:
    """Label `sentences` under a cascade `policy`: the first stage on all, `model` under
    `policy.then` on the sentences whose doubt is >= policy.threshold."""
    stage = first_stage_of(model)
    if stage is None:
        raise ValueError("mode cascade needs a first-stage model: pair one with `seqexit cascade MODEL --first SMALL` "
                         "(or `seqexit.cascade.attach_first_stage`)")
    first = stage.model
    if stage.folder is not None:
        check_pairing(first.labels, first.config.scheme, model.labels, model.config.scheme, str(stage.folder))
    if stage.reused is not None and stage.reused[0] == tuple(map(tuple, sentences)):
        first_run = stage.reused[1]
    else:
        first_run = run_first_stage(first, sentences, batch_size=batch_size)
    to_ids = torch.tensor([model.labels.index(label) for label in first.labels])
    sent_on = [i for i in range(len(sentences)) if sentences[i] and first_run.doubt[i] >= policy.threshold]
    second = run_policy(model, [sentences[i] for i in sent_on], policy.then or ExitPolicy(), batch_size=batch_size)
    counter = new_counter(model)
    counter.merge(second.flops)
    results: list[WordExits] = [
        WordExits(to_ids[ids], conf, torch.zeros(len(ids), dtype=torch.long), flops)
        for ids, conf, flops in zip(first_run.label_ids, first_run.confidence, first_run.flops)
    ]
    kept = set(range(len(sentences))) - set(sent_on)
    for i, out in zip(sent_on, second.sentences):
        out.flops_spent += first_run.flops[i]
        results[i] = out
    _fill_full(model, sentences, sorted(kept), results)
    counter.spent += sum(first_run.flops)
    counter.full += sum(results[i].flops_full for i in kept)
    first_words = sum(len(sentences[i]) for i in kept)
    return PolicyRun(results, counter, second.words_per_layer, first_stage_words=first_words)


def _fill_full(model: MultiExitTagger, sentences: Sequence[Sequence[str]], kept: list[int], results: list[WordExits]) -> None:
    """Each kept sentence's full-depth FLOPs on `model`, counted from its pieces alone."""
    counter = new_counter(model)
    for index, chunks in zip(kept, model.pieces.encode([sentences[i] for i in kept])):
        for chunk in chunks:
            if chunk.n_words:
                results[index].flops_full += int(counter.rows_full(torch.tensor([len(chunk.input_ids)]),
                                                                   torch.tensor([chunk.n_words]))[0])
