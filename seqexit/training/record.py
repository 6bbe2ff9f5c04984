"""The training record: which recipe made a model, with every stage's settings and dev scores.

`seqexit train` stores it as `training.json` in the model folder (it travels with the model
through `seqexit compact`), and `seqexit info` prints it, so a model says how it was made.
"""

from __future__ import annotations

from ..training_defaults import RECIPES
from .joint import TrainResult


def stage_record(stage: str, result: TrainResult) -> dict:
    """One stage: its name, settings, dev score per epoch, the epoch kept and its time."""
    return {
        "stage": stage,
        "config": result.config,
        "dev_history": result.history,
        "best_epoch": result.best_epoch,
        "best_dev": result.best_dev_score,
        "minutes": round(result.seconds / 60, 1),
    }


def describe(record: dict) -> list[str]:
    """Lines for `seqexit info`: the recipe, then one line per stage."""
    adopted = record.get("adopted")
    if adopted and "recipe" not in record:
        scheme = f"spans, {adopted['scheme']}" if adopted.get("scheme") else "per-word tags"
        lines = [f"adopted: encoder and last exit taken unchanged from the Hugging Face token classifier "
                 f"{adopted.get('from', '?')} (labels from its id2label: {scheme})"]
    else:
        recipe = record.get("recipe", "?")
        lines = [f"{recipe}: {RECIPES.get(recipe, 'unknown recipe')}"]
    for stage in record.get("stages", []):
        config = stage.get("config", {})
        history = stage.get("dev_history") or []
        metric = history[-1].get("metric", "dev") if history else "dev"
        share = (config.get("self_sampling") or {}).get("distill_share") or 0
        target = f", {share:.0%} of its targets the starting model's full depth" if share else ""
        lines.append(
            f"{stage['stage']}: {config.get('epochs', '?')} epochs at lr {config.get('learning_rate', '?')}{target}, "
            f"best epoch {stage.get('best_epoch', '?')} ({metric} {stage.get('best_dev', float('nan')):.2f})"
        )
    guard = record.get("ssft_guard")
    if guard:
        lines.append(
            f"SSFT {'kept' if guard['kept'] == 'ssft' else 'discarded'}: full depth on dev "
            f"{guard['full_depth_dev_before']:.2f} before, {guard['full_depth_dev_after']:.2f} after "
            f"(tolerance {guard['tolerance']:g})"
        )
    if record.get("unlabelled"):
        u = record["unlabelled"]
        lines.append(f"unlabelled text: {u['sentences']} sentences from {u['file']}")
    if record.get("context_exits"):
        c = record["context_exits"]
        extra = "".join(f", {part}" for part, on in (("past", c.get("past")), (f"future {c.get('future')}", c.get("future")),
                                                      (f"hidden {c.get('hidden')}", c.get("hidden"))) if on)
        lines.append(f"exits that see more: context {c.get('context', '?')}{extra}, distilled from the last exit for "
                     f"{c.get('epochs', '?')} epochs on {c.get('sentences', '?')} sentences")
    return lines
