"""Exits: deciding per word (or per sentence) where the encoder stops, and running it there."""

from .engine import ExitOutputs, PolicyRun, WordExits, run_exits, run_policy
from .flops import FlopCounter
from .halting import BatchExits, exit_batch
from .policy import MODES, ExitPolicy
from .presets import Preset, check_preset_name
from .uncertainty import normalised_entropy, window_uncertainty

__all__ = [
    "MODES", "BatchExits", "ExitOutputs", "ExitPolicy", "FlopCounter", "PolicyRun", "WordExits",
    "exit_batch", "normalised_entropy", "run_exits", "run_policy", "window_uncertainty",
    "Preset", "check_preset_name",
]
