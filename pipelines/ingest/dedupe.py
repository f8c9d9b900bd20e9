"""Remove duplicate videos: byte-identical copies (sha256) and re-encodes that look alike (phash).

One job: ``DedupeVideos`` splits a PCollection of ``DedupeCandidate`` into ``kept`` candidates
and ``Duplicate`` verdicts, every input landing in exactly one of the two. Near duplicates are
judged by ``video_distance``: the mean per-frame Hamming distance of 64-bit perceptual hashes
taken at ``hash_frames`` evenly spaced times of each video's own duration (``hash_times``), so a
re-encode at another size or bitrate gets nearly the same hashes.

Data flow inside ``DedupeVideos.expand`` (what flows out of each step)::

    DedupeCandidate
      -> exact: GroupByKey(sha256) -> kept: one DedupeCandidate per sha256
                                      duplicates: Duplicate(kind="exact", distance=0)
      -> near:  band keys ((frame, band, value), candidate) -> GroupByKey
                -> verified edges (a, b), each emitted once, video_distance <= T
                -> CombineGlobally union-find -> {input_id: (kept_id, distance)}   (side input)
                -> kept | Duplicate(kind="near")

Candidate generation has guaranteed recall. If the mean distance over F frames is <= T, the
total number of differing bits is <= F*T. Each 64-bit frame hash is cut into T+1 bands, F*(T+1)
bands in all, so at least F bands (one per frame on average) match exactly (pigeonhole). Keying
every video by each (frame, band, band value) therefore puts every true pair in a common group;
no pair within the threshold is missed. Each verified pair is emitted only by the group of its
first shared key, so edges travel once.

Cost: a band key shared by g videos costs g*(g-1)/2 (vectorized) comparisons in one worker;
static or black footage can make such hot keys. Only verified edges leave the workers, and the
union-find holds only the videos that have at least one near edge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton, TaggedOutput

from pipelines.ingest.config import DedupeConfig
from pipelines.ingest.phash import HASH_BITS, frame_phash, hamming  # noqa: F401 (re-exported)

__all__ = [
    "HASH_BITS", "DedupeCandidate", "Duplicate", "DedupeVideos", "frame_phash", "hamming", "preference",
    "video_distance", "hash_times", "band_widths", "band_keys", "verified_edges",
]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NS = "dedupe"  # metrics namespace


@dataclass(frozen=True)
class DedupeCandidate:
    """One video offered to dedupe. Picklable; equal candidates compare equal."""

    input_id: str
    """Unique id of the input (its manifest key)."""
    rank: int
    """Tie-break: of two duplicates of equal quality the lower rank is kept (the ingest uses the
    row number), then the smaller ``input_id``."""
    sha256: str
    """SHA-256 of the file bytes, 64 lowercase hex digits."""
    phashes: tuple[int, ...] = ()
    """``hash_frames`` 64-bit frame hashes at ``hash_times``; empty when unavailable."""
    pixels: int = 0
    """Width x height of the video (display size): of two duplicates the larger is kept."""
    bitrate: float = 0.0
    """Bits per second of the file (size over duration): at equal resolution the higher is kept."""

    def __post_init__(self) -> None:
        if not isinstance(self.input_id, str) or not self.input_id:
            raise ValueError(f"DedupeCandidate.input_id must be a non-empty string, got {self.input_id!r}")
        if not isinstance(self.rank, int) or isinstance(self.rank, bool):
            raise ValueError(f"DedupeCandidate {self.input_id!r}: rank must be an int, got {self.rank!r}")
        if not isinstance(self.sha256, str) or not _SHA256_RE.match(self.sha256):
            raise ValueError(f"DedupeCandidate {self.input_id!r}: sha256 must be 64 lowercase hex digits")
        phashes = tuple(int(h) for h in self.phashes)
        if any(not 0 <= h < 1 << HASH_BITS for h in phashes):
            raise ValueError(f"DedupeCandidate {self.input_id!r}: phashes must be 64-bit unsigned ints")
        object.__setattr__(self, "phashes", phashes)
        if not isinstance(self.pixels, int) or isinstance(self.pixels, bool) or self.pixels < 0:
            raise ValueError(f"DedupeCandidate {self.input_id!r}: pixels must be an int >= 0, got {self.pixels!r}")
        if isinstance(self.bitrate, bool) or not isinstance(self.bitrate, (int, float)) or not self.bitrate >= 0:
            raise ValueError(f"DedupeCandidate {self.input_id!r}: bitrate must be a number >= 0, got {self.bitrate!r}")
        object.__setattr__(self, "bitrate", float(self.bitrate))


@dataclass(frozen=True)
class Duplicate:
    """The verdict on a dropped input: which kept input it duplicates and how."""

    input_id: str
    duplicate_of: str
    """The kept input's id (always an id that ends in ``kept``)."""
    kind: str
    """``"exact"`` (same bytes) or ``"near"`` (frames look alike)."""
    distance: float
    """``video_distance`` to the kept input (0.0 for exact duplicates)."""
    via: str | None = None
    """For an exact copy of a video that was then found a near duplicate: that video's id."""


def video_distance(hashes_a: Sequence[int], hashes_b: Sequence[int]) -> float:
    """Mean per-frame Hamming distance of two videos' frame hashes.

    Args:
        hashes_a: frame hashes of one video (``hash_frames`` of them, at ``hash_times``).
        hashes_b: the other video's, same length.

    Returns:
        The mean distance in [0, 64].

    Raises:
        ValueError: the lists are empty or differ in length.
    """
    if not hashes_a or len(hashes_a) != len(hashes_b):
        raise ValueError(f"video_distance needs two non-empty hash lists of equal length, got "
                         f"{len(hashes_a)} and {len(hashes_b)}")
    return sum(hamming(a, b) for a, b in zip(hashes_a, hashes_b)) / len(hashes_a)


def hash_times(duration: float, hash_frames: int) -> list[float]:
    """Times (seconds) at which to hash frames: the midpoints of ``hash_frames`` equal spans.

    Relative to each video's own duration, so two encodes of one video hash the same moments.

    Args:
        duration: the video duration, seconds (>= 0).
        hash_frames: how many times (``DedupeConfig.hash_frames``, >= 1).

    Returns:
        ``[(i + 0.5) * duration / hash_frames for i in range(hash_frames)]``.
    """
    return [(i + 0.5) * duration / hash_frames for i in range(hash_frames)]


def band_widths(threshold: int) -> tuple[int, ...]:
    """Bit widths of the ``threshold + 1`` bands a 64-bit hash is cut into (first ones wider)."""
    bands = threshold + 1
    return tuple(HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands))


def band_keys(phashes: Sequence[int], threshold: int) -> list[tuple[int, int, int]]:
    """Every ``(frame, band, band value)`` key of one video, in (frame, band) order.

    Two videos with ``video_distance <= threshold`` share at least one key (module docstring).

    Args:
        phashes: the video's frame hashes.
        threshold: ``DedupeConfig.near_duplicate_hamming``.

    Returns:
        ``len(phashes) * (threshold + 1)`` keys.
    """
    keys = []
    for frame, h in enumerate(phashes):
        shift = 0
        for band, width in enumerate(band_widths(threshold)):
            keys.append((frame, band, (h >> shift) & ((1 << width) - 1)))
            shift += width
    return keys


def preference(c: DedupeCandidate) -> tuple[int, float, int, str]:
    """Which copy a set of duplicates keeps: the smallest of these keys.

    The best copy: the highest resolution (``pixels``), then the highest ``bitrate``, then the
    lowest ``rank``, then the smallest ``input_id`` (so the choice never depends on the order in
    which inputs arrive). Exact duplicates share their bytes, so for them rank and id decide.
    """
    return (-c.pixels, -c.bitrate, c.rank, c.input_id)


def verified_edges(key: tuple[int, int, int], members: Iterable[DedupeCandidate],
                   threshold: int) -> list[tuple[DedupeCandidate, DedupeCandidate]]:
    """The near-duplicate pairs of one band group that this group is responsible for emitting.

    A pair is emitted when its ``video_distance <= threshold`` and ``key`` is the first key (in
    ``band_keys`` order) the two share, so each pair comes out of exactly one group.

    Args:
        key: the group's ``(frame, band, value)`` key.
        members: the candidates that have ``key`` (equal-length, non-empty ``phashes``).
        threshold: ``DedupeConfig.near_duplicate_hamming``.

    Returns:
        ``(a, b)`` pairs with ``preference(a) < preference(b)``, sorted.
    """
    ordered = sorted(members, key=preference)
    if len(ordered) < 2:
        return []
    frames = len(ordered[0].phashes)
    table = np.array([c.phashes for c in ordered], dtype=np.uint64)
    limit = threshold * frames  # mean <= T  <=>  sum <= T * F, in integers
    edges = []
    for i in range(len(ordered) - 1):
        sums = np.bitwise_count(table[i + 1:] ^ table[i]).sum(axis=1)
        for j in np.flatnonzero(sums <= limit):
            a, b = ordered[i], ordered[i + 1 + int(j)]
            shared = (ka for ka, kb in zip(band_keys(a.phashes, threshold),
                                           band_keys(b.phashes, threshold)) if ka == kb)
            if next(shared, None) == key:
                edges.append((a, b))
    return edges


class _PickExactFn(beam.DoFn):
    """(sha256, [DedupeCandidate]) -> kept DedupeCandidate | tagged Duplicate(kind="exact")."""

    def __init__(self) -> None:
        self.duplicates = Metrics.counter(_NS, "exact_duplicates")

    def process(self, element):
        _, group = element
        members = sorted(group, key=preference)
        yield members[0]
        for other in members[1:]:
            self.duplicates.inc()
            yield TaggedOutput("duplicates", Duplicate(other.input_id, members[0].input_id, "exact", 0.0))


class _BandKeysFn(beam.DoFn):
    """DedupeCandidate -> ((frame, band, value), DedupeCandidate) for each band key."""

    def __init__(self, threshold: int, hash_frames: int) -> None:
        self.threshold = threshold
        self.hash_frames = hash_frames
        self.unhashed = Metrics.counter(_NS, "near_skipped_no_phashes")

    def process(self, candidate: DedupeCandidate):
        if not candidate.phashes:
            self.unhashed.inc()
            return
        if len(candidate.phashes) != self.hash_frames:
            raise ValueError(f"DedupeCandidate {candidate.input_id!r} has {len(candidate.phashes)} "
                             f"phashes; dedupe.hash_frames is {self.hash_frames}")
        for key in band_keys(candidate.phashes, self.threshold):
            yield key, candidate


class _VerifyFn(beam.DoFn):
    """(band key, [DedupeCandidate]) -> (DedupeCandidate, DedupeCandidate) verified edges."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.edges = Metrics.counter(_NS, "near_edges")
        self.group_sizes = Metrics.distribution(_NS, "band_group_size")

    def process(self, element):
        key, members = element
        members = list(members)
        self.group_sizes.update(len(members))
        for edge in verified_edges(key, members, self.threshold):
            self.edges.inc()
            yield edge


class _ComponentsFn(beam.CombineFn):
    """Union-find over verified edges -> {input_id: (kept input_id, distance to it)}.

    The accumulator is ``(parent, nodes)``: ``parent`` maps an id to its parent id (roots map to
    themselves) and every root is its component's minimum ``preference``; ``nodes`` maps an id to
    its ``(preference, phashes)``. Only videos with an edge are held.
    """

    def create_accumulator(self):
        return {}, {}

    @staticmethod
    def _find(parent: dict, x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def _union(self, acc, a: str, b: str) -> None:
        parent, nodes = acc
        ra, rb = self._find(parent, a), self._find(parent, b)
        if ra != rb:
            if nodes[rb][0] < nodes[ra][0]:
                ra, rb = rb, ra
            parent[rb] = ra  # the root stays the component's best copy (minimum preference)

    def add_input(self, acc, edge):
        parent, nodes = acc
        for c in edge:
            if c.input_id not in parent:
                parent[c.input_id] = c.input_id
                nodes[c.input_id] = (preference(c), c.phashes)
        self._union(acc, edge[0].input_id, edge[1].input_id)
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for parent, nodes in accumulators:
            for node in parent:
                if node not in merged[0]:
                    merged[0][node] = node
                    merged[1][node] = nodes[node]
            for node in parent:
                self._union(merged, node, self._find(parent, node))
        return merged

    def extract_output(self, acc):
        parent, nodes = acc
        out = {}
        for node in sorted(parent):
            root = self._find(parent, node)
            if root != node:
                out[node] = (root, video_distance(nodes[node][1], nodes[root][1]))
        return out


class _SplitNearFn(beam.DoFn):
    """DedupeCandidate + components -> kept DedupeCandidate | tagged Duplicate(kind="near")."""

    def __init__(self) -> None:
        self.kept = Metrics.counter(_NS, "kept")
        self.duplicates = Metrics.counter(_NS, "near_duplicates")

    def process(self, candidate: DedupeCandidate, components: dict):
        found = components.get(candidate.input_id)
        if found is None:
            self.kept.inc()
            yield candidate
        else:
            self.duplicates.inc()
            yield TaggedOutput("duplicates", Duplicate(candidate.input_id, found[0], "near", found[1]))


def _repoint(duplicate: Duplicate, components: dict) -> Duplicate:
    """An exact copy of a near duplicate points at that near duplicate's kept video instead."""
    found = components.get(duplicate.duplicate_of)
    if found is None:
        return duplicate
    return Duplicate(duplicate.input_id, found[0], "near", found[1], via=duplicate.duplicate_of)


class _CountKeptFn(beam.DoFn):
    """DedupeCandidate -> the same, counted as kept (when near dedupe is off)."""

    def __init__(self) -> None:
        self.kept = Metrics.counter(_NS, "kept")

    def process(self, candidate: DedupeCandidate):
        self.kept.inc()
        yield candidate


def _by_sha256(candidate: DedupeCandidate) -> tuple[str, DedupeCandidate]:
    return candidate.sha256, candidate


def _nothing(_element) -> tuple:
    return ()


class DedupeVideos(beam.PTransform):
    """Split candidates into ``kept`` and ``duplicates``; deterministic for any bundle order.

    Which copy is kept is ``preference``: the highest resolution, then the highest bitrate, then
    the lowest rank, then the smallest id.

    Exact (``config.exact``): candidates with one sha256 keep their best (``preference``); the
    others are ``Duplicate(kind="exact", distance=0.0)`` of it.

    Near (``config.near``, on what the exact step kept): two videos are linked when
    ``video_distance <= config.near_duplicate_hamming``; candidates without phashes are never
    linked. Linking is made transitive: each connected component of the link graph keeps its
    best copy (minimum ``preference``) and every other member is a ``Duplicate(kind="near")`` of it,
    with ``distance`` measured to that kept video. So a chain a~b~c where a and c are farther
    apart than the threshold still collapses into one component (keeping the best), and a member's
    distance to the kept one may exceed the threshold. This errs towards removing more: no pair
    within the threshold ever survives together, whatever the order of the input.

    An exact copy whose kept twin became a near duplicate is reported as ``kind="near"`` of the
    component's kept video, with ``via`` naming the twin, so ``duplicate_of`` is always a kept id.

    Args:
        config: the ``DedupeConfig``; a step that is off passes everything through.

    Input: ``PCollection[DedupeCandidate]`` with unique ``input_id``.
    Output: ``{"kept": PCollection[DedupeCandidate], "duplicates": PCollection[Duplicate]}``.
    Metrics (namespace ``dedupe``): counters ``kept``, ``exact_duplicates``, ``near_duplicates``,
    ``near_edges``, ``near_skipped_no_phashes``; distribution ``band_group_size``.

    Raises:
        ValueError: (at run time) a candidate has non-empty ``phashes`` of a length other than
            ``config.hash_frames``.
    """

    def __init__(self, config: DedupeConfig, label: str | None = None) -> None:
        super().__init__(label)
        self.config = config

    def expand(self, candidates):
        cfg = self.config
        duplicates = []
        if cfg.exact:
            exact = (candidates
                     | "KeyBySha256" >> beam.Map(_by_sha256)
                     | "GroupBySha256" >> beam.GroupByKey()
                     | "PickExact" >> beam.ParDo(_PickExactFn()).with_outputs("duplicates", main="kept"))
            survivors, exact_duplicates = exact.kept, exact.duplicates
        else:
            survivors, exact_duplicates = candidates, None
        # survivors: DedupeCandidate, one per sha256 when exact dedupe is on
        if cfg.near:
            threshold = cfg.near_duplicate_hamming
            components = (survivors
                          | "BandKeys" >> beam.ParDo(_BandKeysFn(threshold, cfg.hash_frames))
                          | "GroupByBand" >> beam.GroupByKey()
                          | "VerifyPairs" >> beam.ParDo(_VerifyFn(threshold))
                          | "Components" >> beam.CombineGlobally(_ComponentsFn()))
            # components: one dict {input_id: (kept input_id, distance)}, near duplicates only
            components = AsSingleton(components)
            split = beam.ParDo(_SplitNearFn(), components).with_outputs("duplicates", main="kept")
            near = survivors | "SplitNear" >> split
            kept = near.kept
            duplicates.append(near.duplicates)
            if exact_duplicates is not None:
                exact_duplicates = exact_duplicates | "RepointExact" >> beam.Map(_repoint, components)
        else:
            kept = survivors | "CountKept" >> beam.ParDo(_CountKeptFn())
        if exact_duplicates is not None:
            duplicates.insert(0, exact_duplicates)
        if not duplicates:
            duplicates.append(candidates | "NoDuplicates" >> beam.FlatMap(_nothing))
        # kept: DedupeCandidate; duplicates: Duplicate
        return {"kept": kept, "duplicates": tuple(duplicates) | "AllDuplicates" >> beam.Flatten()}
