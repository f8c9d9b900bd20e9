"""The global sample sequence of a run and who reads which part of it.

One job: map a global index ``g`` to (mixture entry, sample index within the entry) as a pure
function of (seed, g) and the entries' sizes and weights, and map (step, rank, micro-batch) to
the global indices that rank reads. Nothing here keeps state, so any process can compute any
part of the sequence: a run resumes exactly from a step number, also on another number of ranks
(the global batch of a step is the same set of indices whatever the ranks).

The sequence, chunk by chunk (``DataConfig.chunk`` = C indices per chunk):

* each entry e gets ``n_e`` slots per chunk, the largest-remainder rounding of ``C * w_e / sum(w)``
  (weights count samples); an entry that would get no slot is an error (raise ``chunk``);
* chunk c's slots are shuffled with a generator seeded by (seed, c);
* the k-th slot of entry e overall (``k = n_e * c + its rank among e's slots in chunk c``) reads
  sample ``perm_e[k mod N_e]`` of a permutation of the entry's N_e samples seeded by
  (seed, e, k div N_e): every sample once per entry epoch, in a new order each epoch.

Slicing: step s reads indices ``[s*G, (s+1)*G)`` (G = global batch). With R ranks and A
accumulation steps of m samples (``G = R*A*m``), rank r's micro-batch a of step s is
``s*G + (a*R + r)*m + [0, m)``; data-loader worker w of W takes the micro-batches whose running
number ``s*A + a`` is ``w`` mod W (the loader returns them in that order).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

__all__ = ["slot_counts", "Mixture", "micro_batch_indices", "replacement_index"]

_CHUNK_TAG = 0x6D6978  # distinguishes the chunk shuffles' seeds from the epoch permutations'
_EPOCH_TAG = 0x65706F


def slot_counts(weights: Sequence[float], chunk: int) -> list[int]:
    """Slots per chunk of each entry: largest-remainder rounding of ``chunk * w / sum(w)``.

    Raises:
        ValueError: a weight is not positive, or an entry would get no slot.
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(w) == 0 or (w <= 0).any():
        raise ValueError(f"mixture weights must be positive, got {list(weights)}")
    exact = chunk * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: chunk - int(counts.sum())]:
        counts[i] += 1
    if (counts == 0).any():
        i = int(np.argmin(counts))
        raise ValueError(f"mixture entry {i} (weight {weights[i]}) gets no slot in a chunk of {chunk}; "
                         f"raise data.chunk to at least {int(np.ceil(w.sum() / w[i]))}")
    return counts.tolist()


class Mixture:
    """The global sample sequence over the entries of a mixture.

    Args:
        sizes: samples in each entry (N_e >= 1).
        weights: relative weights (they count samples).
        seed: the data seed.
        chunk: indices per chunk.

    Raises:
        ValueError: an empty entry or a weight that gets no slot.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int, chunk: int):
        if len(sizes) != len(weights):
            raise ValueError("one weight per entry is needed")
        for i, n in enumerate(sizes):
            if n < 1:
                raise ValueError(f"mixture entry {i} has no samples")
        self.sizes = [int(n) for n in sizes]
        self.seed = int(seed)
        self.chunk = int(chunk)
        self.counts = slot_counts(weights, chunk)
        self._labels = np.repeat(np.arange(len(sizes)), self.counts)

    @functools.lru_cache(maxsize=8)
    def _chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(entry of each position, occurrence of that entry before it in the chunk)."""
        rng = np.random.default_rng([self.seed, _CHUNK_TAG, c])
        entries = self._labels[rng.permutation(self.chunk)]
        occ = np.zeros(self.chunk, dtype=np.int64)
        seen = np.zeros(len(self.sizes), dtype=np.int64)
        for j, e in enumerate(entries):
            occ[j] = seen[e]
            seen[e] += 1
        return entries, occ

    @functools.lru_cache(maxsize=32)
    def _perm(self, entry: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, _EPOCH_TAG, entry, epoch])
        return rng.permutation(self.sizes[entry])

    def __call__(self, g: int) -> tuple[int, int]:
        """(entry, sample index within the entry) at global index ``g`` >= 0."""
        if g < 0:
            raise ValueError(f"global index must be >= 0, got {g}")
        c, j = divmod(int(g), self.chunk)
        entries, occ = self._chunk(c)
        e = int(entries[j])
        k = self.counts[e] * c + int(occ[j])
        epoch, pos = divmod(k, self.sizes[e])
        return e, int(self._perm(e, epoch)[pos])

    def epoch_of(self, g: int) -> float:
        """Samples read before index ``g`` over the mixture's total, i.e. epochs done (a float)."""
        return g / sum(self.sizes)


def micro_batch_indices(step: int, micro: int, rank: int, world_size: int, accum: int, micro_size: int) -> list[int]:
    """The global indices that ``rank`` reads in micro-batch ``micro`` of optimizer step ``step``.

    Args:
        step: optimizer step (0-based).
        micro: accumulation step within it, ``0 <= micro < accum``.
        rank: this rank, ``0 <= rank < world_size``.
        world_size: ranks.
        accum: micro-batches per rank per step.
        micro_size: samples per micro-batch.

    Returns:
        ``micro_size`` consecutive global indices; over all ranks and micro-batches of a step they
        are exactly ``[step*G, (step+1)*G)``, each once.
    """
    if not (0 <= rank < world_size and 0 <= micro < accum):
        raise ValueError(f"need 0 <= rank < world_size and 0 <= micro < accum, got {rank}, {world_size}, "
                         f"{micro}, {accum}")
    global_batch = world_size * accum * micro_size
    start = step * global_batch + (micro * world_size + rank) * micro_size
    return list(range(start, start + micro_size))


def replacement_index(g: int, attempt: int) -> int:
    """The index read instead of ``g`` when its sample had to be skipped (``attempt`` >= 1).

    Drawn far beyond any real run (``attempt * 2**48 + g``), so replacements never collide with
    the indices of the sequence itself and stay a pure function of (seed, g, attempt).
    """
    return attempt * (1 << 48) + g
