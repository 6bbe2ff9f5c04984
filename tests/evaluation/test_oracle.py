"""The oracle bound: earliest settled layer per word, FLOPs counted as the engine counts TOKEE."""

import torch

from seqexit.evaluation import oracle_bound, oracle_exit_layers
from seqexit.evaluation.oracle import oracle_flops
from seqexit.exits import ExitPolicy, run_exits, run_policy

NEVER, ALWAYS = 0.0, 2.0


def test_earliest_layer_from_which_the_label_stays_the_last_ones():
    labels = torch.tensor([  # (layers=4, words=5)
        [1, 2, 0, 3, 1],
        [1, 0, 0, 3, 2],
        [1, 0, 2, 3, 1],
        [1, 0, 0, 3, 1],
    ])
    # word 0 settled from 1; word 1 from 2; word 2 flips back at 3 -> 4; word 3 from 1; word 4 from 3
    assert oracle_exit_layers(labels).tolist() == [1, 2, 4, 1, 3]


def test_oracle_flops_match_the_engines_count_for_the_same_exit_layers(make_tagger, sentences):
    model = make_tagger(4)
    for layer in (1, 3, 4):
        thresholds = [NEVER] * 4
        thresholds[layer - 1] = ALWAYS
        run = run_policy(model, sentences, ExitPolicy.tokee(thresholds, window=1), batch_size=2)
        spent, full = oracle_flops(model, sentences, [torch.full((len(s),), layer) for s in sentences])
        assert (spent, full) == (run.flops.spent, run.flops.full)


def test_labels_at_the_oracle_layers_are_the_full_depth_labels(make_tagger, sentences):
    model = make_tagger(6)
    bound = oracle_bound(model, sentences)
    outputs = run_exits(model, sentences, all_exits=True)
    for out, layers in zip(outputs, bound.exit_layers):
        picked = out.label_ids.gather(0, (layers - 1)[None])[0]
        assert torch.equal(picked, out.label_ids[-1])
        assert all(torch.equal(out.label_ids[l - 1:, i], out.label_ids[l - 1:, i].new_full((6 - l + 1,), int(out.label_ids[-1, i])))
                   for i, l in enumerate(layers.tolist()))
    assert bound.flops_speedup > 1.0 and 1.0 <= bound.mean_exit_layer <= 6.0
