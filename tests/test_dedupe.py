"""Tests of pipelines.ingest.dedupe: hashes, distances, banding recall, and the DedupeVideos transform."""
from __future__ import annotations

import hashlib
import io
import random

import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
import apache_beam as beam
from hypothesis import given, settings, strategies as st
from PIL import Image

from pipelines.ingest.config import DedupeConfig
from pipelines.ingest.dedupe import (
    DedupeCandidate, DedupeVideos, Duplicate, _ComponentsFn, band_keys, band_widths, frame_phash,
    hamming, hash_times, preference, verified_edges, video_distance,
)

FRAMES = 4
MASK = (1 << 64) - 1


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def flip(hashes, bits):
    """Flip the given bit positions in every frame hash."""
    out = []
    for h in hashes:
        for bit in bits:
            h ^= 1 << bit
        out.append(h)
    return tuple(out)


def rand_hashes(rng: random.Random, frames: int = FRAMES) -> tuple[int, ...]:
    return tuple(rng.getrandbits(64) for _ in range(frames))


def cand(input_id, rank, content, phashes=(), pixels=0, bitrate=0.0):
    return DedupeCandidate(input_id, rank, sha(content), tuple(phashes), pixels, bitrate)


def run_dedupe(candidates, config, label="Dedupe"):
    """Apply DedupeVideos in a fresh FnApiRunner pipeline; returns (pipeline, outputs)."""
    p = BeamTestPipeline(runner=FnApiRunner())
    out = p | "Create" >> beam.Create(candidates) | label >> DedupeVideos(config)
    return p, out


def reference(candidates, config):
    """Brute-force dedupe: what DedupeVideos must output (kept ids, Duplicate list)."""
    order = lambda c: (-c.pixels, -c.bitrate, c.rank, c.input_id)  # noqa: E731  the rule, written out again
    dups, survivors = {}, []
    by_sha = {}
    for c in candidates:
        by_sha.setdefault(c.sha256 if config.exact else c.input_id, []).append(c)
    for group in by_sha.values():
        group.sort(key=order)
        survivors.append(group[0])
        for other in group[1:]:
            dups[other.input_id] = Duplicate(other.input_id, group[0].input_id, "exact", 0.0)
    parent = {c.input_id: c for c in survivors}

    def find(c):
        while parent[c.input_id] is not c:
            c = parent[c.input_id]
        return c

    if config.near:
        hashed = [c for c in survivors if c.phashes]
        for i, a in enumerate(hashed):
            for b in hashed[i + 1:]:
                if video_distance(a.phashes, b.phashes) <= config.near_duplicate_hamming:
                    ra, rb = find(a), find(b)
                    if ra is not rb:
                        low, high = sorted((ra, rb), key=order)
                        parent[high.input_id] = low
    kept = []
    for c in survivors:
        root = find(c)
        if root is c:
            kept.append(c)
        else:
            dups[c.input_id] = Duplicate(c.input_id, root.input_id, "near",
                                         video_distance(c.phashes, root.phashes))
    for d in list(dups.values()):
        if d.kind == "exact" and d.duplicate_of in dups and dups[d.duplicate_of].kind == "near":
            twin = dups[d.duplicate_of]
            dups[d.input_id] = Duplicate(d.input_id, twin.duplicate_of, "near", twin.distance,
                                         via=d.duplicate_of)
    return kept, sorted(dups.values(), key=lambda d: d.input_id)


# ---- hashes and distances ------------------------------------------------------------------


def smooth_image(seed: int, size=(240, 320)) -> np.ndarray:
    """A smooth RGB picture (blurred noise blobs) that perceptual hashing handles like a photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size[::-1], Image.Resampling.BICUBIC))


def test_frame_phash_survives_resize_and_jpeg_but_tells_images_apart():
    frame = smooth_image(1)
    h = frame_phash(frame)
    assert h == frame_phash(Image.fromarray(frame))
    assert 0 <= h <= MASK
    buf = io.BytesIO()
    Image.fromarray(frame).resize((160, 120), Image.Resampling.BILINEAR).save(buf, "JPEG", quality=40)
    reencoded = frame_phash(Image.open(io.BytesIO(buf.getvalue())))
    assert hamming(h, reencoded) <= 4
    others = [hamming(h, frame_phash(smooth_image(seed))) for seed in range(2, 6)]
    assert min(others) >= 16
    assert video_distance([h, h], [reencoded, reencoded]) == hamming(h, reencoded)


def test_hamming_and_video_distance():
    assert hamming(0, MASK) == 64 and hamming(0b1011, 0b0001) == 2
    assert video_distance([0, 0], [0b1, 0b111]) == 2.0
    with pytest.raises(ValueError):
        video_distance([], [])
    with pytest.raises(ValueError):
        video_distance([1, 2], [1])


def test_hash_times_and_bands():
    assert hash_times(8.0, 4) == [1.0, 3.0, 5.0, 7.0]
    for t in range(33):
        widths = band_widths(t)
        assert len(widths) == t + 1 and sum(widths) == 64 and max(widths) - min(widths) <= 1
    keys = band_keys((MASK, 0), 6)
    assert len(keys) == 14 and keys[0] == (0, 0, (1 << 10) - 1) and keys[-1] == (1, 6, 0)


def test_candidate_is_validated():
    with pytest.raises(ValueError):
        DedupeCandidate("a", 0, "ABC", ())
    with pytest.raises(ValueError):
        DedupeCandidate("a", 0, sha("a"), (1 << 64,))
    assert DedupeCandidate("a", 0, sha("a"), [1, 2]).phashes == (1, 2)


@st.composite
def hash_families(draw):
    """Small sets of hash lists, many of them within a few bits of an earlier one."""
    frames = draw(st.integers(1, 4))
    threshold = draw(st.integers(0, 10))
    rng = random.Random(draw(st.integers(0, 2**32)))
    videos = []
    for _ in range(draw(st.integers(2, 8))):
        if videos and rng.random() < 0.7:
            base = rng.choice(videos)
            budget = rng.randint(0, threshold * frames + 2)  # total flipped bits, unevenly spread
            hashes = list(base)
            for _ in range(budget):
                hashes[rng.randrange(frames)] ^= 1 << rng.randrange(64)
            videos.append(tuple(hashes))
        else:
            videos.append(tuple(rng.getrandbits(64) for _ in range(frames)))
    return threshold, videos


@settings(max_examples=150, deadline=None)
@given(hash_families())
def test_banding_finds_exactly_the_pairs_brute_force_finds(family):
    threshold, videos = family
    cands = [DedupeCandidate(f"v{i}", i, sha(str(i)), h) for i, h in enumerate(videos)]
    brute = {(a.input_id, b.input_id) for i, a in enumerate(cands) for b in cands[i + 1:]
             if video_distance(a.phashes, b.phashes) <= threshold}
    groups = {}
    for c in cands:
        for key in band_keys(c.phashes, threshold):
            groups.setdefault(key, []).append(c)
    found = [(a.input_id, b.input_id) for key, members in groups.items()
             for a, b in verified_edges(key, members, threshold)]
    assert len(found) == len(set(found))  # each pair emitted by exactly one group
    assert set(found) == brute


def test_components_merge_is_order_independent():
    rng = random.Random(7)
    nodes = [DedupeCandidate(f"n{i}", rng.randrange(5), sha(str(i)), rand_hashes(rng)) for i in range(12)]
    edges = [(nodes[i], nodes[j]) for i, j in [(0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (7, 3), (9, 10)]]
    fn = _ComponentsFn()
    outputs = set()
    for seed in range(6):
        shuffled = edges[:]
        random.Random(seed).shuffle(shuffled)
        accs = [fn.create_accumulator() for _ in range(3)]
        for k, edge in enumerate(shuffled):
            fn.add_input(accs[k % 3], edge)
        outputs.add(repr(fn.extract_output(fn.merge_accumulators(accs))))
    assert len(outputs) == 1
    singles = [fn.add_input(fn.create_accumulator(), edge) for edge in edges]
    result = fn.extract_output(fn.merge_accumulators(singles))
    assert set(result) == {"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n9", "n10"} - {
        min(ids, key=lambda i: preference(nodes[int(i[1:])])) for ids in
        (["n0", "n1", "n2"], ["n3", "n4", "n5", "n6", "n7"], ["n9", "n10"])}


# ---- the transform -------------------------------------------------------------------------


def test_exact_near_unrelated_and_unhashed():
    rng = random.Random(1)
    base, other = rand_hashes(rng), rand_hashes(rng)
    near = flip(base, [3, 17, 40])  # distance 3 per frame
    cands = [
        cand("vidéo-b", 5, "bytes-1", base),
        cand("視頻-a", 2, "bytes-1", base),        # same bytes, lower rank: kept
        cand("near", 1, "bytes-2", near),         # lowest rank of the near component
        cand("unrelated", 3, "bytes-3", other),
        cand("nohash", 4, "bytes-4", ()),
    ]
    config = DedupeConfig(hash_frames=FRAMES)
    kept, dups = reference(cands, config)
    assert [c.input_id for c in kept] == ["near", "unrelated", "nohash"]
    assert dups == [
        Duplicate("vidéo-b", "near", "near", 3.0, via="視頻-a"),
        Duplicate("視頻-a", "near", "near", 3.0),
    ]
    p, out = run_dedupe(cands, config)
    assert_that(out["kept"], equal_to(kept), label="Kept")
    assert_that(out["duplicates"], equal_to(dups), label="Duplicates")
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    assert counters["exact_duplicates"] == 1 and counters["near_duplicates"] == 1
    assert counters["kept"] == 3 and counters["near_skipped_no_phashes"] == 1


def test_the_best_copy_is_kept_whatever_came_first():
    """Resolution first, then bitrate, then rank and id: a small distorted copy listed first
    (rank 0) loses to the original; of equal resolution the higher bitrate wins; a full tie is
    broken by rank, then by id, in any input order."""
    rng = random.Random(5)
    base = rand_hashes(rng)
    small = cand("small", 0, "small", flip(base, [1, 2]), pixels=240 * 180, bitrate=7e3 * 8 / 5)
    thin = cand("thin", 1, "thin", flip(base, [3]), pixels=320 * 240, bitrate=1e5)
    original = cand("original", 2, "original", base, pixels=320 * 240, bitrate=588e3 * 8 / 5)
    exact_late = cand("b-copy", 9, "original", base, pixels=320 * 240, bitrate=588e3 * 8 / 5)
    exact_tie = cand("a-copy", 9, "original", base, pixels=320 * 240, bitrate=588e3 * 8 / 5)
    cands = [small, thin, original, exact_late, exact_tie]
    config = DedupeConfig(hash_frames=FRAMES)
    assert sorted(cands, key=preference)[0] is original
    kept, dups = reference(cands, config)
    assert [c.input_id for c in kept] == ["original"]
    assert {d.input_id: (d.duplicate_of, d.kind) for d in dups} == {
        "small": ("original", "near"), "thin": ("original", "near"),
        "a-copy": ("original", "exact"), "b-copy": ("original", "exact")}
    with BeamTestPipeline(runner=FnApiRunner()) as p:
        for run in range(3):
            shuffled = cands[:]
            random.Random(run).shuffle(shuffled)
            out = p | f"Create{run}" >> beam.Create(shuffled) | f"Dedupe{run}" >> DedupeVideos(config)
            assert_that(out["kept"], equal_to(kept), label=f"Kept{run}")
            assert_that(out["duplicates"], equal_to(dups), label=f"Duplicates{run}")
    # among exact copies alone (same bytes, same quality): lowest rank, then smallest id
    twins = [cand("z", 3, "same"), cand("y", 3, "same"), cand("x", 4, "same")]
    assert sorted(twins, key=preference)[0].input_id == "y"


def test_candidate_quality_is_validated():
    with pytest.raises(ValueError, match="pixels"):
        DedupeCandidate("a", 0, sha("a"), (), -1)
    with pytest.raises(ValueError, match="bitrate"):
        DedupeCandidate("a", 0, sha("a"), (), 10, float("nan"))


def test_chain_collapses_into_one_component():
    rng = random.Random(2)
    a = rand_hashes(rng)
    b = flip(a, range(0, 5))     # a~b: 5
    c = flip(b, range(5, 10))    # b~c: 5, a~c: 10 > 6
    d = flip(c, range(10, 15))   # c~d: 5
    cands = [cand("c", 0, "c", c), cand("a", 1, "a", a), cand("b", 1, "b", b), cand("d", 9, "d", d)]
    with BeamTestPipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create(cands) | DedupeVideos(DedupeConfig(hash_frames=FRAMES))
        assert_that(out["kept"], equal_to([cands[0]]), label="Kept")
        assert_that(out["duplicates"], equal_to([
            Duplicate("a", "c", "near", 10.0), Duplicate("b", "c", "near", 5.0),
            Duplicate("d", "c", "near", 5.0)]), label="Duplicates")


def random_population(seed: int, n: int = 60):
    """Candidates with exact copies, near copies (of several sizes and bitrates, ties included)
    and chains among random videos."""
    rng = random.Random(seed)
    cands = []

    def quality():
        return rng.choice((0, 320 * 240, 640 * 480)), rng.choice((0.0, 2e5, 1e6))

    for i in range(n):
        roll = rng.random()
        if cands and roll < 0.2:
            src = rng.choice(cands)
            cands.append(DedupeCandidate(f"id-{i}-é", rng.randrange(20), src.sha256, src.phashes,
                                         src.pixels, src.bitrate))
        elif cands and roll < 0.6:
            src = rng.choice([c for c in cands if c.phashes] or cands)
            bits = rng.sample(range(64), rng.randint(0, 9))
            cands.append(DedupeCandidate(f"id-{i}-é", rng.randrange(20), sha(f"c{i}"),
                                         flip(src.phashes, bits) if src.phashes else (), *quality()))
        else:
            hashes = rand_hashes(rng) if roll < 0.95 else ()
            cands.append(DedupeCandidate(f"id-{i}-é", rng.randrange(20), sha(f"c{i}"), hashes, *quality()))
    return cands


CONFIGS = {
    "both": DedupeConfig(hash_frames=FRAMES),
    "near-only": DedupeConfig(hash_frames=FRAMES, exact=False),
    "exact-only": DedupeConfig(hash_frames=FRAMES, near=False),
    "off": DedupeConfig(hash_frames=FRAMES, exact=False, near=False),
}


def test_shuffled_runs_agree_with_brute_force_for_every_toggle():
    cands = random_population(11)
    with BeamTestPipeline(runner=FnApiRunner()) as p:
        for name, config in CONFIGS.items():
            kept, dups = reference(cands, config)
            kept_ids = {c.input_id for c in kept}
            assert len(kept) + len(dups) == len(cands)  # outcomes add up
            assert kept_ids.isdisjoint(d.input_id for d in dups)
            assert all(d.duplicate_of in kept_ids for d in dups)
            kinds = {d.kind for d in dups}
            assert kinds == {"exact", "near"} - ({"exact"} if not config.exact else set()) - (
                {"near"} if not config.near else set())
            for run in range(2):  # two input orders, same pipeline
                shuffled = cands[:]
                random.Random(run).shuffle(shuffled)
                out = (p | f"Create-{name}-{run}" >> beam.Create(shuffled)
                       | f"Dedupe-{name}-{run}" >> DedupeVideos(config))
                assert_that(out["kept"], equal_to(kept), label=f"Kept-{name}-{run}")
                assert_that(out["duplicates"], equal_to(dups), label=f"Duplicates-{name}-{run}")


def test_empty_input_and_wrong_hash_count():
    with BeamTestPipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create([]) | DedupeVideos(DedupeConfig())
        assert_that(out["kept"], equal_to([]), label="Kept")
        assert_that(out["duplicates"], equal_to([]), label="Duplicates")
    p, _ = run_dedupe([cand("a", 0, "a", (1, 2))], DedupeConfig(hash_frames=3))
    with pytest.raises(Exception, match="hash_frames is 3"):
        p.run().wait_until_finish()
