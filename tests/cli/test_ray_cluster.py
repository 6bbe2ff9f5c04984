"""The Ray engine on a simulated two-node cluster (a head and a second node, one CPU each, on
this machine): both nodes tag, and the output equals the local engine's."""

from __future__ import annotations

import pytest

from seqexit import Tagger
from seqexit.exits import ExitPolicy

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install 'seqexit[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

from seqexit.distributed import tag_dataset, tag_on_ray  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def two_nodes():
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_both_nodes_tag_and_the_output_equals_the_local_engine(two_nodes, ner_model, corpus):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    sentences = corpus(120)
    policy = ExitPolicy.sentee(0.3)
    rows = [{"seq": i, "words": s.words} for i, s in enumerate(sentences)]
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    # Ray starts a pool's actors asynchronously and hands blocks to whichever is ready: the first
    # actor up could tag all 12 blocks before the second loads the model. Wait for both, so the
    # assertion below is about placement and dispatch, not about which node loaded faster.
    waited, context.wait_for_min_actors_s = context.wait_for_min_actors_s, 300
    try:
        dataset = ray.data.from_items(rows, override_num_blocks=12)
        tagged = list(tag_dataset(dataset, str(ner_model), policy=policy, workers=2, cpus_per_worker=1,
                                  rows_per_call=10).iter_rows())
    finally:
        context.wait_for_min_actors_s = waited
    assert len({row["node"] for row in tagged}) == 2, "one actor per node, both at work"
    want = Tagger.load(ner_model, policy=policy).tag(sentences)
    assert [int(r["seq"]) for r in tagged] == list(range(120))
    assert [list(r["labels"]) for r in tagged] == [w.labels for w in want]
    got = list(tag_on_ray(sentences, str(ner_model), policy=policy, workers=2, rows_per_call=10))
    assert [(g.labels, g.exit_layers) for g in got] == [(w.labels, w.exit_layers) for w in want]
