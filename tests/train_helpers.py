"""Shared pieces of the trainer tests: the tiny offline Molmo 2, frames, and plain forwards.

One job: build the tiny model folder once per test process (``training.tiny``), and give tests
small synthetic media and a reference per-token loss computed by running one example alone.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.packing import collate, plan_rows
from training.processing import Example

torch.set_num_threads(1)  # tiny matrices on a shared 2-core machine: one thread is several times faster


@functools.lru_cache(maxsize=None)
def tiny_model_dir() -> Path:
    """The tiny Molmo 2 folder with seeded weights, built once per process."""
    from training.tiny import save_tiny

    root = Path(tempfile.mkdtemp(prefix="tiny-molmo2-"))
    atexit.register(shutil.rmtree, root, True)
    return save_tiny(root / "tiny", with_weights=True)


@functools.lru_cache(maxsize=None)
def tiny_processor():
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir())


def tiny_model():
    """A fresh copy of the tiny model in eval mode (float32)."""
    from transformers import Molmo2ForConditionalGeneration
    from transformers.utils import logging

    logging.disable_progress_bar()
    return Molmo2ForConditionalGeneration.from_pretrained(tiny_model_dir()).eval()


def frames(n: int, seed: int = 0, size: tuple[int, int] = (40, 60)) -> list[Image.Image]:
    """``n`` seeded noise images of ``size`` (height, width)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def chat(*turns: str, root: str = "<|video|>") -> str:
    """A training-layout text: ``root`` then alternating user/assistant turns."""
    out = root
    for i in range(0, len(turns), 2):
        if i:
            out += "\n"
        out += f"<|im_start|>user\n{turns[i]}<|im_end|>\n<|im_start|>assistant\n{turns[i + 1]}<|im_end|>"
    return out


def forward_losses(model, examples: list[Example], rows: list[list[int]]) -> torch.Tensor:
    """Per-label-token losses of one collated forward (row-major label order)."""
    from training.loss import token_losses
    from training.packing import model_inputs

    batch = collate(examples, rows, pad_id=0)
    with torch.no_grad():
        logits = model(**model_inputs(batch, "cpu")).logits
    return token_losses(logits, batch["targets"])


def reference_losses(model, processor, text: str, media, branch_labels: list[bool]) -> torch.Tensor:
    """Per-label-token losses of ``text`` run the plain way: processor output straight into the model.

    No 4D mask, no packing, the model's own causal mask and visual block; ``branch_labels`` marks
    the label tokens of the conversation part (from ``encode_branch``), which must line up with the
    processor's tokens of the whole text (checked).
    """
    from transformers.video_utils import VideoMetadata

    from training.loss import token_losses

    kwargs = {}
    if media is not None and media.kind == "video":
        kwargs = dict(videos=[media.frames], video_metadata=[VideoMetadata(
            total_num_frames=len(media.frames), fps=1.0, frames_indices=list(media.times))], do_sample_frames=False)
    elif media is not None:
        kwargs = dict(images=media.frames)
    out = processor(text=text, return_tensors="pt", **kwargs)
    ids = out["input_ids"][0]
    labels = torch.zeros(len(ids), dtype=torch.bool)
    labels[len(ids) - len(branch_labels):] = torch.tensor(branch_labels)
    with torch.no_grad():
        logits = model(**out).logits[0]
    keep = torch.zeros_like(labels)
    keep[:-1] = labels[1:]
    return token_losses(logits[keep], ids[labels])


# ---------------------------------------------------------------------------------------------
# Synthetic samples in the published shape (Clip / ImageSet record, dataset records, frames).

_COLORS = {"red square": (230, 40, 40), "blue square": (40, 60, 230), "green square": (40, 200, 60)}


def _draw(size: tuple[int, int], seed: int, marks: list[tuple[str, float, float]]) -> Image.Image:
    """A dim noise background with a 6 px square of each label's colour centred at (x, y)."""
    h, w = size
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for label, x, y in marks:
        cx, cy = int(x * (w - 1)), int(y * (h - 1))
        arr[max(0, cy - 3):cy + 3, max(0, cx - 3):cx + 3] = _COLORS[label]
    return Image.fromarray(arr)


def video_point_sample(key: str, seed: int, n_frames: int = 3, labels=("red square", "blue square")):
    """A clip of ``n_frames`` sample times with one VideoPoint record per label (points drawn in)."""
    from schemas.sampling import sample_times
    from training.data import Sample

    rng = np.random.default_rng(seed)
    duration = 0.5 * (n_frames - 1) + 0.2
    times = sample_times(duration, 128, 2.0)
    clip = {"key": key, "video_id": f"v{key}", "start": 0.0, "end": duration, "timestamps": times,
            "frame_indices": list(range(len(times))), "frame_width": 64, "frame_height": 48, "max_frames": 128,
            "max_fps": 2.0, "subtitles": None, "split": "train", "mp4": None, "mp4_fps": None,
            "mp4_frame_indices": None, "schema_version": 1}
    records, marks = [], [[] for _ in times]
    for j, label in enumerate(labels):
        t_i = int(rng.integers(len(times)))
        x, y = float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))
        marks[t_i].append((label, x, y))
        records.append({"key": f"{key}-{j}", "video_id": clip["video_id"], "clip_id": key, "clip_start": 0.0,
                        "clip_end": duration, "source": "synthetic", "duration": duration, "label": label,
                        "question": f"Point to the {label}.", "count": 1,
                        "points": [{"time": times[t_i], "x": x, "y": y}], "category": "object",
                        "annotator_unsure": False, "schema_version": 2})
    frames_ = [_draw((48, 64), seed * 100 + i, marks[i]) for i in range(len(times))]
    return Sample(key=key, dataset="VideoPoint", media=clip, records=records, images=frames_)


def multi_image_point_sample(key: str, seed: int, n_images: int = 2, label: str = "green square"):
    """An image set with one MultiImagePoint record (one point per image, drawn in)."""
    from training.data import Sample

    rng = np.random.default_rng(seed)
    images, infos, points = [], [], []
    for i in range(n_images):
        x, y = float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))
        images.append(_draw((56 + 8 * i, 70), seed * 10 + i, [(label, x, y)]))
        infos.append({"image_id": f"{key}i{i}", "uri": f"mem://{key}/{i}.png", "sha256": "0" * 64,
                      "width": 70, "height": 56 + 8 * i})
        points.append({"image_index": i, "x": x, "y": y})
    media = {"key": key, "images": infos, "license": "CC0-1.0", "source": "synthetic", "split": "train",
             "schema_version": 1}
    record = {"key": f"{key}-0", "image_set_id": key, "image_ids": [im["image_id"] for im in infos],
              "label": label, "question": f"Point to the {label}.", "count": n_images, "points": points,
              "annotator_unsure": False, "schema_version": 1}
    return Sample(key=key, dataset="MultiImagePoint", media=media, records=[record], images=images)


def synthetic_sources(n_video: int = 4, n_images: int = 2, seed: int = 0):
    """(train sources, validation sources) of synthetic VideoPoint and MultiImagePoint samples."""
    from training.data import MemorySource

    videos = [video_point_sample(f"c{seed}x{i}", seed * 1000 + i) for i in range(n_video)]
    sets = [multi_image_point_sample(f"s{seed}x{i}", seed * 1000 + 500 + i) for i in range(n_images)]
    return [MemorySource(videos), MemorySource(sets)], [MemorySource(videos[:2]), MemorySource(sets[:1])]


def tiny_config(run_dir, *overrides: str):
    """The shipped tiny-cpu config on the synthetic sets, a tiny model folder and ``run_dir``."""
    from training.config import load_config

    base = [f"run_dir={run_dir}", f"model.path={tiny_model_dir()}", "model.init=pretrained", "model.build_tiny=false",
            "data.root=unused", "data.train=[{dataset: VideoPoint, version: 1.0.0}, "
            "{dataset: MultiImagePoint, version: 1.0.0, weight: 0.5}]",
            "data.validation=[{dataset: VideoPoint, version: 1.0.0, split: validation}, "
            "{dataset: MultiImagePoint, version: 1.0.0, split: validation}]", "data.chunk=12",
            "max_steps=6", "global_batch_size=4", "micro_batch_size=2", "log.every_steps=1",
            "checkpoint.every_steps=3", "eval.max_new_tokens=12"]
    return load_config("tiny-cpu", base + list(overrides))
