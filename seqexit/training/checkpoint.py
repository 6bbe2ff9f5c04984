"""Atomic, resumable training checkpoints in safetensors + JSON (nothing is pickled)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def replace_dir(write, target: Path) -> None:
    """Call `write(tmp_dir)`, then swap tmp_dir in for `target`, so `target` is never half-written."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    path: Path, model, optimizer, scheduler, progress: dict, generators: dict | None = None, extra: dict | None = None
) -> None:
    """Weights, optimiser moments, schedule, RNGs (torch's and `generators`), the objective's own
    tensors (`extra`) and `progress`."""

    def write(folder: Path) -> None:
        tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
        opt_state = optimizer.state_dict()
        for index, state in opt_state["state"].items():
            for name, value in state.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        for name, generator in (generators or {}).items():
            tensors[f"rng.{name}"] = generator.get_state()
        for name, tensor in (extra or {}).items():
            tensors[f"extra.{name}"] = tensor.detach().contiguous()
        save_file(tensors, str(folder / "state.safetensors"))
        meta = {
            "progress": progress,
            "param_groups": opt_state["param_groups"],
            "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
        }
        (folder / "state.json").write_text(json.dumps(meta, indent=1))

    replace_dir(write, path)


def load_checkpoint(
    path: Path, model, optimizer, scheduler, generators: dict | None = None, extra: dict | None = None
) -> dict:
    """Restore what `save_checkpoint` wrote (`extra` tensors in place); returns its `progress` dict."""
    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler_state = scheduler.state_dict()
    scheduler_state.update(meta["scheduler"])
    scheduler.load_state_dict(scheduler_state)
    torch.set_rng_state(tensors["rng.torch"])
    for name, generator in (generators or {}).items():
        generator.set_state(tensors[f"rng.{name}"])
    with torch.no_grad():
        for name, tensor in (extra or {}).items():
            tensor.copy_(tensors[f"extra.{name}"])
    return meta["progress"]
