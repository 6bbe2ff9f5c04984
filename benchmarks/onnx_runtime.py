"""The ONNX Runtime baseline: a seqexit model's full-depth path exported to ONNX and served by
ONNX Runtime in fp32 and with its dynamic int8 quantisation, over seqexit's own word pieces and
length-sorted batches, so that only the encoder's execution differs from seqexit's.

Benchmark-only (`pip install -e ".[onnx]"`): nothing in seqexit needs ONNX Runtime to tag.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from seqexit.exits.engine import length_sorted_batches, owned_slices
from seqexit.model import MultiExitTagger

OPSET = 17


class FullDepthGraph(nn.Module):
    """input_ids, attention_mask (batch, pieces) [, casing_ids] -> last-exit logits at every
    piece (batch, pieces, labels): the graph ONNX Runtime serves. Attention is written out as
    matmul + additive mask + softmax, the form ONNX Runtime's optimiser knows."""

    def __init__(self, model: MultiExitTagger) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, casing_ids: torch.Tensor | None = None):
        model = self.model
        hidden = model.adapter.embed(input_ids, casing_ids)  # (batch, pieces, hidden)
        additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -10000.0  # (batch, 1, 1, pieces)
        for parts in model.adapter.layers:
            heads = parts.num_heads
            q, k, v = (proj(hidden).unflatten(-1, (heads, -1)).transpose(1, 2) for proj in (parts.query, parts.key, parts.value))
            scores = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5) + additive  # (batch, heads, pieces, pieces)
            context = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)  # (batch, pieces, hidden)
            hidden = parts.attn_norm(parts.attn_out(context) + hidden)
            hidden = parts.ffn_norm(parts.ffn_out(parts.ffn_act(parts.ffn_in(hidden))) + hidden)
        return model.exits[-1].linear(hidden)


def export_onnx(model: MultiExitTagger, path: Path) -> Path:
    """Write the full-depth graph of `model` (float, CPU) to `path`, with dynamic batch and length."""
    # the wrapper in eval mode too: the exporter puts the traced module back in the mode it found it
    # in, and a fresh wrapper is in training mode, which would leave `model` with dropout on
    graph = FullDepthGraph(model.eval()).eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    names, inputs = ["input_ids", "attention_mask"], [ids, mask]
    if model.config.casing:
        names.append("casing_ids")
        inputs.append(torch.ones(2, 8, dtype=torch.long))
    axes = {name: {0: "batch", 1: "pieces"} for name in names} | {"logits": {0: "batch", 1: "pieces"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    # the TorchScript exporter: torch's newer one needs onnxscript, one more dependency for the same graph
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(graph, tuple(inputs), str(path), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path


def quantize_onnx(source: Path, target: Path, *, per_channel: bool = False) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of `source` (weights int8, activations per call),
    the recipe its documentation gives for transformer encoders on the CPU."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)
    return target


class OnnxTagger:
    """Label word lists with an exported graph in an ONNX Runtime session (`threads` intra-op)."""

    def __init__(self, path: Path, model: MultiExitTagger, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.model = model
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, sentences: list[list[str]], batch_size: int) -> list[list[str]]:
        labels = self.model.labels
        out: list[list[str]] = [[""] * len(words) for words in sentences]
        for group, batch in length_sorted_batches(self.model, sentences, batch_size):
            feed = {"input_ids": batch.input_ids.numpy(), "attention_mask": batch.attention_mask.long().numpy()}
            if "casing_ids" in self.inputs:
                feed["casing_ids"] = batch.casing_ids.numpy()
            logits = torch.from_numpy(self.session.run(["logits"], feed)[0])  # (batch, pieces, labels)
            ids = logits.gather(1, batch.word_starts[..., None].expand(-1, -1, logits.shape[-1])).argmax(-1)
            for row, (sentence, chunk) in enumerate(group):
                into, take = owned_slices(chunk)
                out[sentence][into] = [labels[i] for i in ids[row, take].tolist()]
        return out
