"""spaCy 3 components backed by the seqexit engine: `seqexit_ner` and `seqexit_tagger`.

spaCy finds the factories through the `spacy_factories` entry points and imports this module on
every `spacy.blank`/`spacy.load`, so it imports spaCy only: seqexit (torch, transformers) is
imported when a component is built. The components are thin shells over `seqexit.spacy_docs`.

Lifecycle: the model named in the config is checked when the component is built (task, preset)
and loaded on first use. `to_disk`/`to_bytes` store the model folder itself (config, weights,
tokenizer, presets: `seqexit.bundle.save_model`), and `from_disk`/`from_bytes` load from there,
so `spacy.load` never needs the original folder (a config whose model cannot be found is left
unloaded until `from_disk` fills it). Pickling goes through `to_bytes` (safetensors, never
pickled weights), which is what `nlp.pipe(n_process=...)` needs under spawn/forkserver; under fork
the workers inherit the component, and building one registers `seqexit.spacy_docs.fork_safe_torch`
(forked workers run torch on one thread: the parent's OpenMP pool would hang them).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span, Token
from spacy.util import minibatch, registry
from spacy.vocab import Vocab

if TYPE_CHECKING:
    from seqexit.exits import ExitPolicy, Preset
    from seqexit.model import MultiExitTagger
    from seqexit.spacy_docs import TokenExits

CHUNKS_KEY = "chunks"  # doc.spans key of a chunk model's chunks
FLOPS_KEY = ("seqexit", "flops")  # doc.user_data key behind doc._.seqexit_flops
MODEL_FILES_KEY = "model_files"
FIRST_STAGE_DIR = "first_stage"  # the one subfolder a serialized model may hold: `seqexit.cascade.FIRST_STAGE_DIR`


def _span_confidence(span: Span) -> float | None:
    """Mean exit confidence of the span's labelled (non-whitespace) tokens; None if it has none."""
    values = [t._.exit_confidence for t in span if t._.exit_layer]
    return sum(values) / len(values) if values else None


def _doc_flops(doc: Doc) -> tuple[int, int] | None:
    """(spent, full) FLOPs of the doc under the policy and at full depth; None if not run."""
    value = doc.user_data.get(FLOPS_KEY)
    return (int(value[0]), int(value[1])) if value is not None else None


def register_extensions() -> None:
    """token._.exit_layer, token._.exit_confidence, span._.confidence, doc._.seqexit_flops.
    Idempotent: an extension that is already registered is left as it is."""
    for cls, name, kwargs in (
        (Token, "exit_layer", {"default": None}),
        (Token, "exit_confidence", {"default": None}),
        (Span, "confidence", {"getter": _span_confidence}),
        (Doc, "seqexit_flops", {"getter": _doc_flops}),
    ):
        if not cls.has_extension(name):
            cls.set_extension(name, **kwargs)


register_extensions()


class SeqExitPipe(Pipe):
    """Base of the seqexit components: settings, the lazily loaded model, batching, errors and
    serialization. Subclasses say which tasks they take (`tasks`) and how labels become
    annotations (`set_annotations`).

    Policy: `preset` (a name in the model's presets.json) when given, else `policy`: a
    `seqexit.ExitPolicy` (or its `to_dict` form; None: `ExitPolicy()`). quantize="int8"
    runs the encoder on int8 kernels (CPU only), and `preset` then names one of the model's int8 presets.
    runtime: what runs the layers, "auto" (measured on this CPU), "torch" or "onnx".
    """

    factory: str = ""
    tasks: tuple[str, ...] = ()

    def __init__(
        self,
        vocab: Vocab,
        name: str,
        *,
        model: str | None,
        preset: str | None = None,
        policy: ExitPolicy | Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        quantize: str | None = None,
        scorer: Callable | None = None,
        runtime: str = "auto",
    ) -> None:
        from seqexit.exits import ExitPolicy
        from seqexit.bundle import resolve_device
        from seqexit.quantize import check_quantize
        from seqexit.runtime import check_runtime
        from seqexit.spacy_docs import fork_safe_torch

        fork_safe_torch()  # before any fork: nlp.pipe(n_process=...) under fork would hang otherwise
        self.vocab, self.name, self.scorer = vocab, name, scorer
        self.model_name = model or ""
        self.preset, self.batch_size, self.device = preset, batch_size, resolve_device(device)
        try:
            self.quantize = check_quantize(quantize)
        except ValueError as err:
            raise ValueError(f"{self.factory}: {err}") from None
        if self.quantize and self.device != "cpu":
            raise ValueError(f"{self.factory}: quantize={self.quantize!r} runs on the CPU only, not on device {self.device!r}")
        try:
            self.runtime = check_runtime(runtime)
        except ValueError as err:
            raise ValueError(f"{self.factory}: {err}") from None
        if policy is None or isinstance(policy, Mapping):
            policy = ExitPolicy.from_dict(policy or {})
        elif not isinstance(policy, ExitPolicy):
            raise ValueError(f"{self.factory}: policy must be an ExitPolicy or a dict of its settings, not {type(policy).__name__}")
        self.configured_policy = policy  # the config's policy, in force when no preset is given
        if batch_size < 1:
            raise ValueError(f"{self.factory}: batch_size must be >= 1, got {batch_size}")
        self._policy: ExitPolicy | None = None if preset else policy
        self._model: MultiExitTagger | None = None  # the float model (what to_disk writes)
        self._runner: MultiExitTagger | None = None  # what tags: the model, or its int8 copy
        self._preset_sections: dict[str | None, dict[str, Preset]] = {}  # quantize -> presets
        self._source: Path | None = None
        self._missing = "no model given (model is empty): load one with from_disk or from_bytes"
        if self.model_name:
            self._locate(self.model_name)

    def _locate(self, name: str) -> None:
        """Find the model folder and check its task and preset now (cheap: JSON files only);
        a model that cannot be found is remembered as missing, since `spacy.load` builds the
        component from a config whose folder may be gone before `from_disk` fills it."""
        from seqexit.bundle import ModelBundle

        try:
            bundle = ModelBundle.find(name)
        except FileNotFoundError as err:
            self._missing = str(err)
            return
        self._source = bundle.folder
        self._check_task(bundle.config.task, self._source)
        self._resolve_policy(bundle.presets(self.quantize), self._source)

    def _check_task(self, task: str, where: Path | str) -> None:
        if task not in self.tasks:
            fits = "seqexit_tagger" if task == "pos" else "seqexit_ner"
            raise ValueError(
                f"{self.factory}: {where} is a {task!r} model, but this component takes {' or '.join(map(repr, self.tasks))} "
                f"models; use {fits} for it"
            )

    def _resolve_policy(self, presets: dict[str, Preset], where: Path | str) -> None:
        if self.preset is None:
            return
        if self.preset not in presets:
            flag = f" --quantize {self.quantize}" if self.quantize else ""
            kind = f"{self.quantize} " if self.quantize else ""
            missing = f"no {kind}presets" if self.quantize else "no presets.json"
            have = f"available: {', '.join(presets)}" if presets else f"it has {missing} (run `seqexit calibrate{flag}`)"
            raise ValueError(f"{self.factory}: unknown {kind}preset {self.preset!r} for {where}; {have}")
        self._policy = presets[self.preset].policy

    def _load(self, folder: Path, where: Path | str) -> None:
        """Load model and presets from a model folder and resolve the policy against them."""
        from seqexit.bundle import ModelBundle

        bundle = ModelBundle(folder)
        self._check_task(bundle.config.task, where)
        sections = bundle.all_presets()
        self._resolve_policy(sections[self.quantize], where)
        opened = bundle.open(policy=self._policy, quantize=self.quantize, device=self.device, keep_float=True,
                             runtime=self.runtime)
        self._model, self._runner, self._preset_sections = opened.model, opened.runner, sections

    @property
    def seqexit_model(self) -> MultiExitTagger:
        """The seqexit model, loaded on first use (not `model`: spaCy probes `proc.model` for
        thinc models, also before `from_disk` has filled a placeholder)."""
        if self._model is None:
            if self._source is None:
                raise ValueError(f"{self.factory} component {self.name!r} has no model: {self._missing}")
            self._load(self._source, self._source)
        return self._model

    @property
    def policy(self) -> ExitPolicy:
        """The exit policy in force (the preset's once the model is loaded)."""
        self.seqexit_model
        return self._policy

    @property
    def presets(self) -> dict[str, Preset]:
        """The model's presets for this component's engine (its int8 ones when quantized)."""
        self.seqexit_model
        return dict(self._preset_sections.get(self.quantize, {}))

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels; read from the model's config (without loading) while the model is
        not loaded, () while there is none (spaCy asks for labels of every component in `nlp.meta`)."""
        if self._model is not None:
            return tuple(self._model.labels)
        if self._source is None:
            return ()
        from seqexit.bundle import read_config

        return tuple(read_config(self._source).labels)

    @property
    def task(self) -> str:
        return self.seqexit_model.config.task

    def __call__(self, doc: Doc) -> Doc:
        error_handler = self.get_error_handler()
        try:
            self.set_annotations([doc], self.predict([doc]))
            return doc
        except Exception as err:
            error_handler(self.name, self, [doc], err)

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Tag `batch_size` docs at a time (their tokens batched together by the engine, in
        order). When a batch fails, its docs are retried one by one and only the docs that
        fail alone go to the error handler, so `nlp.set_error_handler(ignore_error)` drops
        just those."""
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size):
            try:
                predictions = self.predict(docs)
            except Exception:
                predictions = None
            for i, doc in enumerate(docs):
                try:
                    self.set_annotations([doc], [predictions[i]] if predictions is not None else self.predict([doc]))
                except Exception as err:
                    error_handler(self.name, self, [doc], err)
                    continue
                yield doc

    def predict(self, docs: Iterable[Doc]) -> list[TokenExits]:
        """Per doc: a label, confidence and exit layer for every token, and the doc's FLOPs."""
        from seqexit.spacy_docs import label_tokens

        self.seqexit_model
        model = self._runner
        outside = "O" if model.config.scheme else ""
        return label_tokens(model, [[t.text for t in doc] for doc in docs], self._policy, batch_size=self.batch_size, outside=outside)

    def set_annotations(self, docs: Iterable[Doc], predictions: list[TokenExits]) -> None:
        """Exit extensions on every token and doc; subclasses add the labels."""
        for doc, result in zip(docs, predictions):
            for token, layer, confidence in zip(doc, result.exit_layers, result.confidence):
                token._.exit_layer = layer
                token._.exit_confidence = confidence
            doc.user_data[FLOPS_KEY] = result.flops

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write the model folder (`seqexit.bundle.save_model`): float weights, also when the
        component runs int8, and the model's presets, float and int8; a cascade's first stage
        goes into its `first_stage` subfolder (`seqexit.cascade.copy_first_stage`)."""
        from seqexit.bundle import save_model
        from seqexit.cascade import copy_first_stage

        save_model(self.seqexit_model, path, presets=self._preset_sections)
        copy_first_stage(self._runner, path)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> SeqExitPipe:
        """Load the model folder that `to_disk` wrote (the config's model is not read)."""
        self._load(Path(path), f"{path} (component {self.name!r})")
        self._source = Path(path)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        """The `to_disk` folder as msgpack: {"model_files": {file name: bytes}}."""
        with tempfile.TemporaryDirectory(prefix="seqexit-") as folder:
            self.to_disk(folder)
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        return srsly.msgpack_dumps({MODEL_FILES_KEY: files})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> SeqExitPipe:
        """Load what `to_bytes` wrote, through a temporary folder: deleted afterwards, or, when
        it holds a cascade's first stage (loaded on first use), kept while the component lives."""
        files = srsly.msgpack_loads(bytes_data).get(MODEL_FILES_KEY)
        if not isinstance(files, dict) or not files:
            raise ValueError(f"{self.factory}: these bytes hold no seqexit model (no {MODEL_FILES_KEY!r})")
        holder = tempfile.TemporaryDirectory(prefix="seqexit-")
        folder = Path(holder.name)
        try:
            for name, data in files.items():
                parts = name.split("/") if isinstance(name, str) else []
                nested = len(parts) == 2 and parts[0] == FIRST_STAGE_DIR  # a cascade's first stage
                if not parts or any(part in ("", ".", "..") or Path(part).name != part for part in parts) or (
                        len(parts) > 1 and not nested):
                    raise ValueError(f"{self.factory}: bad file name {name!r} in serialized model")
                (folder / name).parent.mkdir(exist_ok=True)
                (folder / name).write_bytes(data)
            self._load(folder, f"bytes (component {self.name!r})")
        finally:
            if (folder / FIRST_STAGE_DIR).is_dir() and self._model is not None:
                self._first_stage_files = holder
            else:
                holder.cleanup()
        self._source = None
        self._missing = "the model came from bytes"
        return self

    def _config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this component (the model comes from bytes)."""
        return {"model": "", "preset": self.preset, "policy": self.configured_policy, "batch_size": self.batch_size,
                "device": self.device, "quantize": self.quantize, "scorer": self.scorer, "runtime": self.runtime}

    def __reduce__(self):
        """Pickle as settings + `to_bytes` (safetensors inside), never as torch objects."""
        return _rebuild, (type(self), self.vocab, self.name, self._config(), self.model_name, self.to_bytes())


def _rebuild(cls: type[SeqExitPipe], vocab: Vocab, name: str, config: dict[str, Any], model_name: str, data: bytes) -> SeqExitPipe:
    component = cls(vocab, name, **config)
    component.model_name = model_name
    return component.from_bytes(data)


class SeqExitNER(SeqExitPipe):
    """Entities from a seqexit NER model in `doc.ents`, or chunks from a chunking model in
    `doc.spans["chunks"]` (doc.ents is then left alone).

    overwrite=False keeps the existing entities (or chunks) and adds the predicted ones without
    overlaps by `spacy.util.filter_spans` (longest first; on a tie the existing span stays);
    overwrite=True replaces them. `span._.confidence` of an entity is the mean exit confidence
    of its words.
    """

    factory = "seqexit_ner"
    tasks = ("ner", "chunk")

    def __init__(self, vocab: Vocab, name: str, *, overwrite: bool = False, **config: Any) -> None:
        super().__init__(vocab, name, **config)
        self.overwrite = overwrite

    def set_annotations(self, docs: Iterable[Doc], predictions: list[TokenExits]) -> None:
        from seqexit.spacy_docs import entity_spans, merge_spans

        docs = list(docs)
        super().set_annotations(docs, predictions)
        scheme, chunks = self.seqexit_model.config.scheme, self.task == "chunk"
        for doc, result in zip(docs, predictions):
            spans = entity_spans(doc, result.labels, scheme)
            if chunks:
                doc.spans[CHUNKS_KEY] = merge_spans(doc.spans.get(CHUNKS_KEY, []), spans, overwrite=self.overwrite)
            else:
                doc.ents = merge_spans(doc.ents, spans, overwrite=self.overwrite)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "overwrite": self.overwrite}


class SeqExitTagger(SeqExitPipe):
    """Per-token tags from a seqexit POS model in `token.tag_`, and in `token.pos_` too for
    labels that are Universal POS tags (never a non-UPOS tag). Whitespace tokens get no tag."""

    factory = "seqexit_tagger"
    tasks = ("pos",)

    def set_annotations(self, docs: Iterable[Doc], predictions: list[TokenExits]) -> None:
        from seqexit.spacy_docs import set_tags

        docs = list(docs)
        super().set_annotations(docs, predictions)
        for doc, result in zip(docs, predictions):
            set_tags(doc, result.labels)


POLICY_FUNCTION = "seqexit.exit_policy.v1"
# `ExitPolicy`'s defaults, written out so that this module imports spaCy only
# (tests/spacy check that they equal ExitPolicy()'s).
POLICY_DEFAULTS: dict[str, Any] = {
    "mode": "full",
    "threshold": 0.0,
    "window": 2,
    "min_layer": 1,
    "static_layer": None,
    "criterion": "entropy",
    "patience": None,
}


@registry.misc(POLICY_FUNCTION)
def make_exit_policy(
    mode: str = "full",
    threshold: float | list[float] = 0.0,
    window: int = 2,
    min_layer: int = 1,
    static_layer: int | None = None,
    criterion: str = "entropy",
    patience: int | None = None,
) -> ExitPolicy:
    """The components' `policy` block: a `seqexit.ExitPolicy` (see it for the settings), checked
    when the pipeline is built. In config.cfg:

        [components.seqexit_ner.policy]
        @misc = "seqexit.exit_policy.v1"
        mode = "tokee"
        threshold = 0.2
        window = 2

    and in Python `config={"policy": {"mode": "tokee", "threshold": 0.2}}` (spaCy merges the
    dict into the default block, "@misc" included; the keys left out take their defaults)."""
    from seqexit.exits import ExitPolicy

    return ExitPolicy(mode=mode, threshold=threshold, window=window, min_layer=min_layer, static_layer=static_layer,
                      criterion=criterion, patience=patience)


def _exit_policy(factory: str, name: str, policy: Any, flat: dict[str, Any]) -> ExitPolicy:
    """The component's policy: the `policy` block, or, for configs saved before it existed, the
    flat keys (mode, threshold, ...) at the top of the component's config, with a warning. Flat
    keys beside a policy block that is not the default one are an error: which one was meant?"""
    from seqexit.exits import ExitPolicy

    if policy is None or isinstance(policy, Mapping):
        policy = ExitPolicy.from_dict(policy or {})
    given = {key: value for key, value in flat.items() if value is not None}
    if not given:
        return policy
    keys = ", ".join(given)
    if policy != ExitPolicy():
        raise ValueError(
            f"{factory} {name!r}: the exit policy is given twice, as flat keys ({keys}) in [components.{name}] and as "
            f"the block [components.{name}.policy]; keep the policy block only"
        )
    warnings.warn(
        f"{factory} {name!r}: exit policy keys at the top of the component's config ({keys}) are deprecated; "
        f"move them into its policy block: [components.{name}.policy] with @misc = \"{POLICY_FUNCTION}\" "
        f"(in Python: config={{\"policy\": {{...}}}})",
        UserWarning,
        stacklevel=2,
    )
    return ExitPolicy.from_dict({**POLICY_DEFAULTS, **given})


COMMON_CONFIG: dict[str, Any] = {
    "preset": None,
    "policy": {"@misc": POLICY_FUNCTION, **POLICY_DEFAULTS},
    "batch_size": 32,
    "device": "cpu",
    "quantize": None,
    "runtime": "auto",
}


@Language.factory(
    "seqexit_ner",
    default_config={"model": "en-ner", **COMMON_CONFIG, "overwrite": False, "scorer": {"@scorers": "spacy.ner_scorer.v1"}},
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans", "token._.exit_layer", "token._.exit_confidence"],
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_ner(
    nlp: Language,
    name: str,
    model: str | None,
    preset: str | None,
    policy: Any,
    batch_size: int,
    device: str,
    quantize: str | None,
    runtime: str,
    overwrite: bool,
    scorer: Callable | None,
    mode: str | None = None,
    threshold: float | list[float] | None = None,
    window: int | None = None,
    min_layer: int | None = None,
    static_layer: int | None = None,
    criterion: str | None = None,
    patience: int | None = None,
) -> SeqExitNER:
    """`nlp.add_pipe("seqexit_ner", config={"model": PATH_OR_NAME, "preset": "balanced"})`, or
    `config={"model": ..., "policy": {"mode": "tokee", "threshold": 0.2}}` (`make_exit_policy`);
    add `"quantize": "int8"` for the int8 engine, `"runtime": "onnx"` or `"torch"` to fix what
    runs the layers (default "auto"). mode ... patience: the flat policy keys of
    pipelines saved before the policy block (null: not given; deprecated)."""
    flat = {"mode": mode, "threshold": threshold, "window": window, "min_layer": min_layer, "static_layer": static_layer,
            "criterion": criterion, "patience": patience}
    return SeqExitNER(
        nlp.vocab, name, model=model, preset=preset, policy=_exit_policy("seqexit_ner", name, policy, flat),
        batch_size=batch_size, device=device, quantize=quantize, overwrite=overwrite, scorer=scorer, runtime=runtime,
    )


@Language.factory(
    "seqexit_tagger",
    default_config={"model": "en-pos", **COMMON_CONFIG, "scorer": {"@scorers": "spacy.tagger_scorer.v1"}},
    assigns=["token.tag", "token.pos", "token._.exit_layer", "token._.exit_confidence"],
    default_score_weights={"tag_acc": 1.0},
)
def make_tagger(
    nlp: Language,
    name: str,
    model: str | None,
    preset: str | None,
    policy: Any,
    batch_size: int,
    device: str,
    quantize: str | None,
    runtime: str,
    scorer: Callable | None,
    mode: str | None = None,
    threshold: float | list[float] | None = None,
    window: int | None = None,
    min_layer: int | None = None,
    static_layer: int | None = None,
    criterion: str | None = None,
    patience: int | None = None,
) -> SeqExitTagger:
    """`nlp.add_pipe("seqexit_tagger", config={"model": PATH_OR_NAME})`; the policy as for `make_ner`."""
    flat = {"mode": mode, "threshold": threshold, "window": window, "min_layer": min_layer, "static_layer": static_layer,
            "criterion": criterion, "patience": patience}
    return SeqExitTagger(
        nlp.vocab, name, model=model, preset=preset, policy=_exit_policy("seqexit_tagger", name, policy, flat),
        batch_size=batch_size, device=device, quantize=quantize, scorer=scorer, runtime=runtime,
    )
