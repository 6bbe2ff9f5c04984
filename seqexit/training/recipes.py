"""`train`: a whole training run in one call, as `seqexit train` makes it. The recipe's first
stage(s) on a new model, then self-sampling fine-tuning (SSFT) behind the full-depth guard, and
the training record (`model.training_record`, saved with the model as training.json).

    from seqexit.training import TrainConfig, train
    outcome = train(train_set, dev_set, config=TrainConfig(epochs=4), output_dir="runs/ner")  # distill, then SSFT
    outcome.model.save("runs/ner/model")  # carries outcome.record

Stages write their checkpoints and best models under `output_dir` (`joint/`, `ssft/`); a
stage that finds its checkpoint there resumes from it, and a finished stage is not run again.
The final model is returned, not saved: saving it is the caller's choice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..backbones import DEFAULT_BACKBONE, resolve_backbone
from ..data import Sentence, label_set
from ..model import TASKS, MultiExitTagger
from .config import TrainConfig
from .distill import DEFAULT_TEMPERATURE, train_distill
from .joint import TrainResult, train_joint
from .learned_weights import DEFAULT_MUTUAL, train_learned_weights
from .record import RECIPES, stage_record
from .self_sampling import (
    DEFAULT_FULL_DEPTH_TOLERANCE, SelfSamplingConfig, SelfSamplingOutcome, train_self_sampling_guarded,
)
from .two_stage import train_two_stage
from ..training_defaults import DEFAULT_RECIPE, SSFT_EPOCHS, SSFT_LEARNING_RATE

log = logging.getLogger(__name__)



def backbone_is_uncased(backbone: str | Path = DEFAULT_BACKBONE) -> bool:
    """Whether the backbone's tokenizer lowercases its input (an uncased model: "Apple" and "apple"
    become the same pieces): its normalizer's output for a capitalised probe, else the tokenizer's
    `do_lower_case`. all-MiniLM-L6-v2 (the default backbone) is uncased."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_backbone(backbone)), local_files_only=True)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None) if backend is not None else None
    if normalizer is not None:
        return normalizer.normalize_str("Apple") == "apple"
    return bool(getattr(tokenizer, "do_lower_case", False) or tokenizer.init_kwargs.get("do_lower_case", False))


def default_casing(backbone: str | Path = DEFAULT_BACKBONE) -> bool:
    """Casing features by default: on for an uncased backbone (they give it back capitalisation,
    +2.05 dev F1 on CoNLL-2003 and +0.31 UPOS accuracy on UD EWT with all-MiniLM-L6-v2), off for
    a cased one, whose pieces already carry it."""
    return backbone_is_uncased(backbone)


@dataclass
class TrainOutcome:
    """What `train` made.

    model: the final model, holding the weights kept (the guard's choice when SSFT ran) and
        `model.training_record` (= record).
    record: the training record: recipe, every stage's settings and dev scores (an `init`
        model's earlier stages first), train_options (one entry per run), the unlabelled text
        and the SSFT guard's decision.
    stages: this run's stages by name, in order ("ordinary fine-tune", "lower exits", ..., "SSFT").
    ssft: the guard's measurements and decision; None without SSFT.
    """

    model: MultiExitTagger
    record: dict
    stages: dict[str, TrainResult] = field(default_factory=dict)
    ssft: SelfSamplingOutcome | None = None

    @property
    def ssft_kept(self) -> bool:
        """Whether the final weights are SSFT's (False: no SSFT, or the guard discarded it)."""
        return self.ssft is not None and self.ssft.kept == "ssft"


def train(
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    *,
    output_dir: str | Path,
    recipe: str = DEFAULT_RECIPE,
    config: TrainConfig | None = None,
    ssft: bool = True,
    ssft_config: TrainConfig | None = None,
    sampling: SelfSamplingConfig | None = None,
    ssft_tolerance: float = DEFAULT_FULL_DEPTH_TOLERANCE,
    init: MultiExitTagger | None = None,
    unlabelled: Sequence[Sentence] | None = None,
    distill_temperature: float = DEFAULT_TEMPERATURE,
    mutual: float = DEFAULT_MUTUAL,
    backbone: str | Path = DEFAULT_BACKBONE,
    task: str = "ner",
    casing: bool | None = None,
    num_layers: int | None = None,
    options: dict | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train a multi-exit tagger on gold-tagged `train`, choosing every stage's best epoch on `dev`.

    recipe: the first stage(s), one of `RECIPES` ("two-stage", "joint", "distill", "learned-weights");
        default "distill", the measured best (docs/training.md, 'Which to use').
    config: the first stage's run (default `TrainConfig()`); each recipe sets its own exit
        weights and encoder training on top (see the recipe functions).
    ssft: then SSFT, kept only if full depth on dev lost at most `ssft_tolerance` points
        (0: keep the better of the two). ssft_config: its run (default 2 epochs at lr 2e-5,
        config's batch size and seed); sampling: its TOKEE sampling (default `SelfSamplingConfig()`).
    init: a trained model to start SSFT from (trained in place; the first stage is skipped and
        the recipe is the one in its record, which this run's stages extend).
    unlabelled: sentences without gold that the "distill" recipe's lower exits also learn from.
    backbone, task, casing, num_layers: the new model when there is no `init` (see
        `MultiExitTagger.from_backbone`); its labels are those of `train` and `dev`. casing None
        (the default): on for an uncased backbone, off for a cased one (`default_casing`).
    options: this run's entry in the record's train_options (the command line records its
        options); default: this call's settings.
    progress: progress bars, the dev score of every epoch and one line per stage on stderr
        (always logged).

    Bad arguments raise ValueError before anything is trained or written.
    """
    config = config or TrainConfig()
    _check_arguments(train, recipe=recipe, ssft=ssft, ssft_tolerance=ssft_tolerance, init=init, unlabelled=unlabelled,
                     distill_temperature=distill_temperature, mutual=mutual, task=task, casing=casing,
                     num_layers=num_layers)
    output_dir = Path(output_dir)
    if casing is None and init is None:
        casing = default_casing(backbone)
    if init is not None:
        model = init
        record = dict(init.training_record or {})
        record["stages"] = list(record.get("stages", []))
    else:
        span_tags = task != "pos"
        model = MultiExitTagger.from_backbone(
            backbone, label_set([*train, *dev], span_scheme=span_tags), task=task,
            scheme="iob2" if span_tags else None, casing=bool(casing), num_layers=num_layers,
        )
        record = {"recipe": recipe, "stages": []}
    if options is None:
        options = {"recipe": recipe, "ssft": ssft, "ssft_tolerance": ssft_tolerance, "init": init is not None,
                   "unlabelled": len(unlabelled) if unlabelled else 0, "distill_temperature": distill_temperature,
                   "mutual": mutual, "backbone": str(backbone), "task": task, "casing": casing, "num_layers": num_layers}
    elif options.get("casing", False) is None:  # the command line's auto: record what it resolved to
        options = {**options, "casing": casing}
    record["train_options"] = [*record.get("train_options", []), options]  # one entry per run
    _say(f"{len(train)} training sentences, {len(model.labels)} labels, {model.num_layers} layers", progress)
    outcome = TrainOutcome(model, record)

    if init is None:
        _say(f"stage 1: {recipe}, {config.epochs} epochs at lr {config.learning_rate:g}", progress)
        outcome.stages.update(first_stage(model, recipe, train, dev, config, output_dir / "joint",
                                          unlabelled=unlabelled or (), temperature=distill_temperature,
                                          mutual=mutual, progress=progress))
        if unlabelled:
            sources = dict.fromkeys(s.source for s in unlabelled if s.source)
            record["unlabelled"] = {"file": ", ".join(sources) or None, "sentences": len(unlabelled)}
    if ssft:
        ssft_config = ssft_config or TrainConfig(epochs=SSFT_EPOCHS, learning_rate=SSFT_LEARNING_RATE,
                                                 batch_size=config.batch_size, seed=config.seed)
        _say(f"stage 2: SSFT, {ssft_config.epochs} epochs at lr {ssft_config.learning_rate:g}", progress)
        guard = train_self_sampling_guarded(model, train, dev, ssft_config, output_dir / "ssft", sampling=sampling,
                                            tolerance=ssft_tolerance, progress=progress)
        outcome.stages["SSFT"], outcome.ssft = guard.result, guard
        record["ssft_guard"] = guard.to_dict()
        _say(f"SSFT: full depth on dev {guard.full_depth_before:.2f} before, {guard.full_depth_after:.2f} after: "
             f"{'kept' if guard.kept == 'ssft' else 'discarded (it cost more than the tolerance)'}", progress)
    record["stages"] += [stage_record(name, result) for name, result in outcome.stages.items()]
    model.training_record = record  # `model` holds the weights kept: the guard restored them if SSFT was discarded
    return outcome


def first_stage(
    model: MultiExitTagger,
    recipe: str,
    train: Sequence[Sentence],
    dev: Sequence[Sentence],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    unlabelled: Sequence[Sentence] = (),
    temperature: float = DEFAULT_TEMPERATURE,
    mutual: float = DEFAULT_MUTUAL,
    progress: bool = True,
) -> dict[str, TrainResult]:
    """Run the recipe's first stage(s) on `model` (in place) into `output_dir`; their results by stage name."""
    if recipe == "joint":
        return {"joint": train_joint(model, train, dev, config, output_dir, progress=progress)}
    if recipe == "learned-weights":
        return {"learned weights": train_learned_weights(model, train, dev, config, output_dir, mutual=mutual,
                                                         progress=progress)}
    if recipe == "distill":
        first, second = train_distill(model, train, dev, config, output_dir, unlabelled=unlabelled,
                                      temperature=temperature, progress=progress)
        return {"ordinary fine-tune": first, "self-distillation": second}
    if recipe == "two-stage":
        first, second = train_two_stage(model, train, dev, config, output_dir, progress=progress)
        return {"ordinary fine-tune": first, "lower exits": second}
    raise ValueError(_unknown_recipe(recipe))


def _check_arguments(train, *, recipe, ssft, ssft_tolerance, init, unlabelled, distill_temperature, mutual, task,
                     casing, num_layers) -> None:
    """The usage errors, all found before any work."""
    if recipe not in RECIPES:
        raise ValueError(_unknown_recipe(recipe))
    if unlabelled and recipe != "distill":
        raise ValueError(f"unlabelled text feeds self-distillation: it needs recipe 'distill', not {recipe!r}")
    if init is not None:
        if unlabelled:
            raise ValueError("unlabelled text feeds the first stage, which an init model skips")
        if casing or num_layers is not None:
            raise ValueError("casing and the number of layers shape a new model; the init model keeps its own")
        if not ssft:
            raise ValueError("an init model is trained by SSFT only: it cannot go without SSFT")
    if distill_temperature <= 0:
        raise ValueError(f"the distillation temperature must be > 0, not {distill_temperature}")
    if mutual < 0:
        raise ValueError(f"the mutual distillation weight must be >= 0, not {mutual}")
    if ssft_tolerance < 0:
        raise ValueError(f"the SSFT tolerance must be >= 0, not {ssft_tolerance}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"the number of layers must be >= 1, not {num_layers}")
    if not train:
        raise ValueError("no training sentences")
    if init is None and task != "pos" and not any(t != "O" for s in train for t in s.tags or []):
        where = next((s.source for s in train if s.source), "the training sentences")
        raise ValueError(f"{where}: no span tags found for task {task!r} (per-word tags such as POS need task 'pos')")


def _unknown_recipe(recipe: str) -> str:
    return f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}"


def _say(message: str, progress: bool) -> None:
    log.info(message)
    if progress:
        tqdm.write(message, file=sys.stderr)
