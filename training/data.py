"""Samples in, micro-batches out: the trainer's data path from published samples to model inputs.

One job: read the samples the global sequence (``training.mixture``) assigns to this rank and
worker, render their conversations, encode them (``training.processing``), weight them
(``training.loss``) and lay them out (``training.packing``).

The interface every source of samples meets (``Source``): ``len(source)`` samples, and
``source.get(i)`` returns a :class:`Sample`: one media item of one dataset with every record of
that dataset on it:

* ``key``, ``dataset``;
* ``media``: the Clip record (its ``timestamps`` are the frames' times) or the ImageSet record;
* ``records``: the dataset's records on that media item (plain dicts);
* ``images``: PIL images: the clip's frames in time order, or the set's images in its order;
* ``conversations``: optional, each record's messages in the dataset's default style (the
  published samples carry them); otherwise they are made with ``schemas.prompts.messages_for``.

``MemorySource`` holds samples in memory (tests, benchmarks); ``training.sources`` reads the
published versions through ``shards``.

A sample that cannot be trained (too long; see ``DataConfig.too_long``) is counted and replaced
by the sample at ``mixture.replacement_index(g, attempt)``, so every micro-batch keeps its size,
every rank runs the same number of forward passes, and the run stays a pure function of the seed.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

import torch

from training.config import DataConfig, LossConfig
from training.loss import assign_weights
from training.mixture import Mixture, micro_batch_indices, replacement_index
from training.packing import collate, plan_rows
from training.processing import Example, Media, build_examples

__all__ = ["Sample", "Source", "MemorySource", "sample_media", "render_training", "encode_sample",
           "encode_micro_batch", "BatchStream", "MAX_REPLACEMENTS", "STAT_KEYS"]

MAX_REPLACEMENTS = 8
"""Replacement attempts for a skipped sample before the micro-batch fails."""
STAT_KEYS = ("read", "replaced", "dropped_branches", "truncated", "skipped_too_long", "skipped_visual_too_long")
"""The data counters every micro-batch reports (the same keys on every rank, for all-reduce)."""


@dataclass
class Sample:
    """One media item of one dataset with every record of that dataset on it."""

    key: str
    dataset: str
    media: dict
    records: list
    images: list
    conversations: Optional[list] = None

    @property
    def kind(self) -> str:
        """``video`` for a clip, ``images`` for an image set."""
        return "video" if "timestamps" in self.media else "images"


class Source(Protocol):
    """Random access to the samples of one dataset version and split."""

    def __len__(self) -> int: ...

    def get(self, index: int) -> Sample: ...


class MemorySource:
    """Samples held in a list."""

    def __init__(self, samples: Sequence[Sample]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int) -> Sample:
        return self.samples[index]


def sample_media(sample: Sample) -> list[Media]:
    """The media each record of ``sample`` shows (one shared object per distinct image order).

    A clip's records all see its frames at ``timestamps``; a multi-image record sees the set's
    images in its ``image_ids`` order (all of them, in set order, when it names none).
    """
    if sample.kind == "video":
        media = Media("video", sample.images, [float(t) for t in sample.media["timestamps"]])
        return [media] * len(sample.records)
    position = {img["image_id"]: i for i, img in enumerate(sample.media["images"])}
    shared: dict[tuple, Media] = {}
    out = []
    for record in sample.records:
        ids = tuple(record.get("image_ids") or [img["image_id"] for img in sample.media["images"]])
        if ids not in shared:
            missing = [i for i in ids if i not in position]
            if missing:
                raise ValueError(f"{sample.key}: record {record.get('key')} names images {missing} not in the set")
            shared[ids] = Media("images", [sample.images[position[i]] for i in ids])
        out.append(shared[ids])
    return out


def render_training(messages: list) -> str:
    """The training-layout text of a conversation (``schemas`` chat rendering)."""
    try:
        from schemas.prompts import render_chat
    except ImportError:  # pragma: no cover - depends on [5/9] having landed
        raise NotImplementedError("rendering conversations needs schemas.prompts ([5/9])") from None
    return render_chat(messages, add_generation_prompt=False, layout="training")


def _conversations(sample: Sample, style: str, index: int, seed: int) -> list:
    if style == "default" and sample.conversations is not None:
        return sample.conversations
    try:
        from schemas.prompts import messages_for
    except ImportError:  # pragma: no cover - depends on [5/9] having landed
        raise NotImplementedError("conversations from records need schemas.prompts.messages_for ([5/9])") from None
    if style == "default":
        return [messages_for(sample.dataset, r, sample.media, None) for r in sample.records]
    import numpy as np

    from schemas.prompts import styles_for

    rng = np.random.default_rng([seed, 0x5747, index])
    out = []
    for r in sample.records:
        choices = list(styles_for(sample.dataset, r))
        out.append(messages_for(sample.dataset, r, sample.media, choices[int(rng.integers(len(choices)))]))
    return out


def encode_sample(sample: Sample, processor: Any, data: DataConfig, index: int = -1,
                  stats: Optional[collections.Counter] = None,
                  render: Callable[[list], str] = render_training) -> list[Example]:
    """Render and encode one sample into examples (empty when the length policy skips it).

    Args:
        sample: the sample.
        processor: the ``Molmo2Processor``.
        data: the data settings (style, length policy, message trees).
        index: the sample's global index (drawn styles depend on it).
        stats: counter updated with length-policy events.
        render: messages -> training-layout text.
    """
    conversations = _conversations(sample, data.style, index, data.seed)
    if len(conversations) != len(sample.records):
        raise ValueError(f"{sample.key}: {len(conversations)} conversations for {len(sample.records)} records")
    texts = [render(m) for m in conversations]
    return build_examples(processor, sample.key, sample.dataset, texts, sample_media(sample), data.max_seq_len,
                          data.too_long, data.message_tree, stats, index)


def encode_micro_batch(indices: Sequence[int], mixture: Mixture, sources: Sequence[Source], processor: Any,
                       data: DataConfig, loss: LossConfig,
                       render: Callable[[list], str] = render_training) -> dict[str, Any]:
    """Read, encode, weight and collate the samples at ``indices``.

    Returns:
        ``training.packing.collate``'s batch plus ``stats`` (length-policy and replacement
        counts, ``read`` samples) and ``indices`` (the global indices actually trained).

    Raises:
        RuntimeError: a sample and all its replacements were skipped.
    """
    stats: collections.Counter = collections.Counter()
    examples: list[Example] = []
    for g in indices:
        for attempt in range(MAX_REPLACEMENTS + 1):
            gi = g if attempt == 0 else replacement_index(g, attempt)
            entry, i = mixture(gi)
            stats["read"] += 1
            got = encode_sample(sources[entry].get(i), processor, data, gi, stats, render)
            if got:
                examples.extend(got)
                break
            stats["replaced"] += 1
        else:
            raise RuntimeError(f"global index {g}: the sample and {MAX_REPLACEMENTS} replacements were all "
                               f"skipped ({dict(stats)}); raise data.max_seq_len")
    assign_weights(examples, loss)
    rows = plan_rows([len(e) for e in examples], data.max_seq_len, data.packing)
    batch = collate(examples, rows, processor.tokenizer.pad_token_id)
    batch["stats"] = {k: int(stats.get(k, 0)) for k in STAT_KEYS}
    return batch


class BatchStream(torch.utils.data.IterableDataset):
    """This rank's micro-batches from ``start_step`` on, forever, in order.

    Data-loader worker w of W builds the micro-batches whose running number ``step * accum +
    micro`` is w mod W; ``torch.utils.data.DataLoader`` (``batch_size=None``) returns workers'
    items round-robin, which is exactly running-number order.
    """

    def __init__(self, sources: Sequence[Source], mixture: Mixture, processor: Any, data: DataConfig,
                 loss: LossConfig, rank: int, world_size: int, accum: int, micro_size: int, start_step: int,
                 render: Callable[[list], str] = render_training):
        super().__init__()
        self.sources, self.mixture, self.processor = list(sources), mixture, processor
        self.data, self.loss, self.render = data, loss, render
        self.rank, self.world_size, self.accum, self.micro_size = rank, world_size, accum, micro_size
        self.start_step = start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        n = self.start_step * self.accum + worker
        while True:
            step, micro = divmod(n, self.accum)
            indices = micro_batch_indices(step, micro, self.rank, self.world_size, self.accum, self.micro_size)
            batch = encode_micro_batch(indices, self.mixture, self.sources, self.processor, self.data, self.loss,
                                       self.render)
            batch["step"], batch["micro"] = step, micro
            yield batch
            n += workers
