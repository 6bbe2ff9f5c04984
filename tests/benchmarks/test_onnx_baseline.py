"""The ONNX Runtime baseline of the int8 benchmark (benchmarks/onnx_runtime.py): the exported
full-depth graph labels every word as seqexit's own full depth does."""

import sys
from pathlib import Path

import pytest
import torch

from seqexit.exits import ExitPolicy, run_policy

pytest.importorskip("onnxruntime", reason="the benchmark extra: pip install -e '.[onnx]'")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from onnx_runtime import FullDepthGraph, OnnxTagger, export_onnx, quantize_onnx  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX export and int8 quantization of the benchmark baseline


def test_onnx_graph_labels_equal_seqexit_full_depth(make_tagger, sentences, tmp_path):
    model = make_tagger(4)
    long = (sentences[0] + sentences[2]) * 8  # over 64 pieces: windows, as in the engine
    inputs = sentences + [long]
    batch = model.pieces.collate([c for chunks in model.pieces.encode(sentences) for c in chunks])
    with torch.inference_mode():
        graph = FullDepthGraph(model)(batch.input_ids, batch.attention_mask.long())
        expected = model(batch, exits="last")[0]
    at_words = graph.gather(1, batch.word_starts[..., None].expand(-1, -1, graph.shape[-1]))
    assert (at_words - expected)[batch.word_mask].abs().max() < 1e-4
    path = export_onnx(model, tmp_path / "model.onnx")
    assert not model.training, "the export leaves the (shared) model in eval mode: dropout stays off"
    labels = OnnxTagger(path, model, threads=1)(inputs, 2)
    reference = [r.labels(model) for r in run_policy(model, inputs, ExitPolicy(), batch_size=2).sentences]
    assert labels == reference
    int8 = OnnxTagger(quantize_onnx(path, tmp_path / "model.int8.onnx"), model, threads=1)(inputs, 2)
    assert [len(x) for x in int8] == [len(s) for s in inputs]
