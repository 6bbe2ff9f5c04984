"""Accuracy against FLOPs speed-up, one line per exit mode, as a PNG (matplotlib, optional extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .exits import PolicyScore
from .sweep import frontier

STYLE = {"full": ("black", "*"), "static": ("tab:gray", "s"), "sentee": ("tab:blue", "o"), "tokee": ("tab:red", "D")}


def plot_tradeoff(scores: Sequence[PolicyScore], path: str | Path, *, title: str | None = None) -> Path:
    """Draw every policy as a faint point and each mode's frontier as a line; returns `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'seqexit[plot]'") from None
    if not scores:
        raise ValueError("nothing to plot")
    metric = scores[0].metric
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=150)
    for mode, (color, marker) in STYLE.items():
        points = [s for s in scores if s.policy.mode == mode]
        if not points:
            continue
        axes.scatter([s.flops_speedup for s in points], [s.score for s in points], color=color, marker=marker,
                     alpha=0.25, s=18)
        best = frontier(points) if mode in ("sentee", "tokee") else sorted(points, key=lambda s: s.flops_speedup)
        axes.plot([s.flops_speedup for s in best], [s.score for s in best], color=color, marker=marker,
                  markersize=5, linewidth=1.8, label=mode if mode != "full" else "full depth")
    axes.set_xlabel("FLOPs speed-up over full depth (x)")
    axes.set_ylabel("span F1 (%)" if metric == "f1" else "accuracy (%)")
    axes.set_title(title or f"{'F1' if metric == 'f1' else 'Accuracy'} against speed-up")
    axes.grid(True, alpha=0.3)
    axes.legend(frameon=False)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
