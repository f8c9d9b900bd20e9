"""The global sample sequence, rank/worker slices, worker order, replacement of skipped samples."""
from __future__ import annotations

import collections

import pytest
import torch

from tests.train_helpers import multi_image_point_sample, synthetic_sources, tiny_config, tiny_processor
from training.data import BatchStream, MemorySource, encode_micro_batch, encode_sample, sample_media
from training.mixture import Mixture, micro_batch_indices, replacement_index, slot_counts


def test_slot_counts_round_by_largest_remainder_and_refuse_starved_entries():
    assert slot_counts([1, 1, 1], 10) == [4, 3, 3]
    assert slot_counts([2, 1], 12) == [8, 4]
    with pytest.raises(ValueError, match="raise data.chunk to at least 101"):
        slot_counts([100, 1], 50)


def test_the_sequence_is_a_pure_function_with_the_weights_and_every_sample_once_per_epoch():
    sizes, weights = [5, 3], [3.0, 1.0]
    a, b = Mixture(sizes, weights, seed=7, chunk=8), Mixture(sizes, weights, seed=7, chunk=8)
    seq = [a(g) for g in range(80)]
    assert seq == [b(g) for g in reversed(range(80))][::-1]  # no state: any order of calls
    assert seq != [Mixture(sizes, weights, seed=8, chunk=8)(g) for g in range(80)]
    for c in range(10):  # each chunk holds each entry's share
        assert collections.Counter(e for e, _ in seq[8 * c:8 * c + 8]) == {0: 6, 1: 2}
    firsts = [i for e, i in seq if e == 0]
    assert sorted(firsts[:5]) == list(range(5)) and sorted(firsts[5:10]) == list(range(5))
    assert firsts[:5] != firsts[5:10]  # a new order every entry epoch


@pytest.mark.parametrize("world, accum, micro", [(1, 4, 2), (2, 2, 2), (4, 1, 2), (2, 1, 4), (8, 1, 1)])
def test_every_rank_layout_reads_exactly_the_steps_global_batch(world, accum, micro):
    for step in (0, 3):
        got = [g for r in range(world) for a in range(accum)
               for g in micro_batch_indices(step, a, r, world, accum, micro)]
        assert sorted(got) == list(range(8 * step, 8 * step + 8))
    assert replacement_index(5, 1) > 2**40 and replacement_index(5, 1) != replacement_index(5, 2)


def test_workers_deliver_the_same_micro_batches_in_the_same_order():
    config = tiny_config("unused", "data.num_workers=2")
    train, _ = synthetic_sources()
    mix = Mixture([len(s) for s in train], [1.0, 0.5], 0, 12)

    def first(n_workers, start_step):
        stream = BatchStream(train, mix, tiny_processor(), config.data, config.loss, rank=1, world_size=2, accum=2,
                             micro_size=1, start_step=start_step)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=n_workers)
        out = []
        for batch in loader:
            out.append((batch["step"], batch["micro"], batch["indices"], batch["input_ids"].tolist()))
            if len(out) == 6:
                return out

    plain = first(0, 0)
    assert [(s, m) for s, m, _, _ in plain] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [i for _, _, i, _ in plain] == [[1], [3], [5], [7], [9], [11]]  # rank 1's slots of each step
    assert first(2, 0) == plain
    assert first(2, 1) == plain[2:] + first(0, 3)[:2]  # resume at a step, with workers


def test_a_sample_too_long_is_replaced_by_a_pure_function_of_its_index():
    config = tiny_config("unused", "data.max_seq_len=110", "data.too_long=skip")
    long_set = multi_image_point_sample("big", 3, n_images=5)  # more tokens than 110
    short_set = multi_image_point_sample("small", 4, n_images=2)
    sources = [MemorySource([long_set, short_set])]
    mix = Mixture([2], [1.0], 0, 4)
    batch = encode_micro_batch(range(4), mix, sources, tiny_processor(), config.data, config.loss)
    assert set(batch["keys"]) == {"small"} and batch["n_examples"] == 4
    stats = batch["stats"]
    assert stats["replaced"] == stats["skipped_visual_too_long"] + stats["skipped_too_long"] > 0
    assert batch["stats"]["read"] == 4 + batch["stats"]["replaced"]
    again = encode_micro_batch(range(4), mix, sources, tiny_processor(), config.data, config.loss)
    assert again["indices"] == batch["indices"] and torch.equal(again["input_ids"], batch["input_ids"])


def test_images_follow_each_records_image_order_and_styles_can_be_drawn():
    sample = multi_image_point_sample("s", 1, n_images=3)
    flipped = dict(sample.records[0], key="s-1", image_ids=list(reversed(sample.records[0]["image_ids"])),
                   points=[dict(p, image_index=2 - p["image_index"]) for p in reversed(sample.records[0]["points"])])
    sample.records.append(flipped)
    first, second = sample_media(sample)
    assert first.frames == sample.images and second.frames == list(reversed(sample.images))
    config = tiny_config("unused", "data.style=random")
    examples = encode_sample(sample, tiny_processor(), config.data, index=5)
    assert len(examples) == 2  # two image orders: two roots
    again = encode_sample(sample, tiny_processor(), config.data, index=5)
    assert [e.branches[0].ids for e in again] == [e.branches[0].ids for e in examples]
    texts = {tuple(encode_sample(sample, tiny_processor(), config.data, index=i)[0].branches[0].ids)
             for i in range(12)}
    assert len(texts) > 1  # styles drawn per index
