"""Validation: loss on the validation sets and generation-based task metrics, as a table and JSON.

One job: score a model (during training, or any checkpoint through ``molmo2-data eval``) on the
validation sets of a config, on every rank at once, and write the result.

* **Loss**: mean token cross entropy over the answer tokens (weighting off, so it is comparable
  between runs), per validation set, over its first ``eval.max_samples`` samples.
* **Generation**: for every record of those samples, the first user turn is rendered in the
  released chat template (``schemas.prompts.render_chat(layout="template")``), greedy decoding
  writes an answer (``eval.max_new_tokens``), and the answer is scored against the record's
  target with ``schemas.metrics``, by dataset:

  | dataset | metrics |
  |---|---|
  | VideoPoint, MultiImagePoint | pointing precision/recall/F1 (points parsed with ``schemas.pointing``; a hit within ``eval.point_distance``, video points over (t / duration, x, y)); counting exact and close (``|pred - true| <= 1 + floor(0.05 * true)``) against the record's ``count``: the count read from the answer when the target states one, else the number of points predicted (counting by pointing) |
  | VideoTrack | tracking per-frame F1 with one-to-one matching, and id switches |
  | CapQA, SubtitleQA | multiple-choice accuracy |
  | AskModelAnything, MultiImageQA, SynMultiImageQA | free-form QA normalized match and token F1 |

  Sums are pooled over items (precision = all hits / all predicted points). A kind with no
  item prints ``n/a (no data)``. The thresholds are written into the metrics file.

Every rank handles an equal share (padded by repeating items whose results are dropped), and
under FSDP2 every generation runs exactly ``max_new_tokens`` forward passes with the answer cut
at the first end token (greedy tokens before it are the same), so the sharded forwards stay in
step across ranks.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TextIO

import torch

from training.config import LossConfig, TrainConfig
from training.data import Source, encode_sample, sample_media
from training.loss import assign_weights, weighted_sum
from training.packing import collate, model_inputs, plan_rows

__all__ = ["METRIC_ROWS", "THRESHOLDS", "evaluate", "format_table", "score_answer"]

THRESHOLDS = {
    "point_distance": "eval.point_distance (normalized units; video points over (t / duration, x, y))",
    "count_close": "|pred - true| <= 1 + floor(0.05 * true)",
    "track_distance": "eval.point_distance, per frame",
    "qa_match": "equal after NFKC, lowercase, punctuation removed, whitespace collapsed",
}
METRIC_ROWS = [
    ("pointing", "precision"), ("pointing", "recall"), ("pointing", "f1"),
    ("counting", "exact"), ("counting", "close"),
    ("tracking", "frame_f1"), ("tracking", "id_switches"),
    ("multiple_choice", "accuracy"),
    ("qa", "match"), ("qa", "token_f1"),
]
_KINDS = {"VideoPoint": ("pointing", "counting"), "MultiImagePoint": ("pointing", "counting"),
          "VideoTrack": ("tracking",), "CapQA": ("multiple_choice",), "SubtitleQA": ("multiple_choice",),
          "AskModelAnything": ("qa",), "MultiImageQA": ("qa",), "SynMultiImageQA": ("qa",)}


def score_answer(dataset: str, pred: str, target: str, record: dict, media: dict, point_distance: float) -> dict:
    """Raw sums of one generated answer for each metric kind of its dataset.

    Returns:
        ``{kind: {sum name: number}}`` (pooled later), empty for datasets without a metric.
    """
    from schemas import metrics
    from schemas.pointing import parse_count, parse_points

    out: dict[str, dict[str, float]] = {}
    kinds = _KINDS.get(dataset, ())
    if "pointing" in kinds:
        duration = media["end"] - media["start"] if "timestamps" in media else None
        s = metrics.score_point_text(pred, target, point_distance, duration)
        out["pointing"] = {"hits": len(s.matches), "true": s.n_a, "pred": s.n_b}
    if "counting" in kinds:
        true = int(record["count"])
        if parse_count(target) is not None:  # the answer states a count: read it from the prediction
            c = metrics.count_scores(pred, true)
        else:  # a points-only answer counts by pointing: the number of points predicted
            n = len(parse_points(pred))
            c = {"exact": n == true, "close": metrics.count_close(n, true)}
        out["counting"] = {"n": 1, "exact": float(c["exact"]), "close": float(c["close"])}
    if "tracking" in kinds:
        t = metrics.score_track_text(pred, target, point_distance)
        out["tracking"] = {"hits": t["matches"], "true": t["true_points"], "pred": t["pred_points"],
                           "id_switches": t["id_switches"]}
    if "multiple_choice" in kinds:
        out["multiple_choice"] = {"n": 1, "correct": float(metrics.choice_correct(pred, target))}
    if "qa" in kinds:
        out["qa"] = {"n": 1, "match": float(metrics.normalized_match(pred, target)),
                     "token_f1": metrics.token_f1(pred, target)}
    return out


def _figures(sums: dict[str, dict[str, float]]) -> dict[str, dict[str, Optional[float]]]:
    """Pooled sums -> the metrics of ``METRIC_ROWS`` (None where a kind has no item)."""
    def ratio(a: float, b: float) -> float:
        return a / b if b else 1.0

    out: dict[str, dict[str, Optional[float]]] = {k: {} for k, _ in METRIC_ROWS}
    p = sums.get("pointing")
    if p:
        out["pointing"] = {"precision": ratio(p["hits"], p["pred"]), "recall": ratio(p["hits"], p["true"]),
                           "f1": ratio(2 * p["hits"], p["true"] + p["pred"])}
    if (c := sums.get("counting")) and c["n"]:
        out["counting"] = {"exact": c["exact"] / c["n"], "close": c["close"] / c["n"]}
    if t := sums.get("tracking"):
        out["tracking"] = {"frame_f1": ratio(2 * t["hits"], t["true"] + t["pred"]), "id_switches": t["id_switches"]}
    if (m := sums.get("multiple_choice")) and m["n"]:
        out["multiple_choice"] = {"accuracy": m["correct"] / m["n"]}
    if (q := sums.get("qa")) and q["n"]:
        out["qa"] = {"match": q["match"] / q["n"], "token_f1": q["token_f1"] / q["n"]}
    return out


def format_table(result: dict[str, Any]) -> str:
    """The metrics table of ``evaluate``'s result: one row per metric, one column per validation set.

    Columns are named ``dataset/version/split``, or just the dataset (and a split other than
    ``validation`` in brackets) when every set has the same version.
    """
    sets = list(result["sets"])
    parts = [name.split("/") for name in sets]
    if len({p[1] for p in parts if len(p) == 3}) == 1 and all(len(p) == 3 for p in parts):
        # one version for all: "Cap" for its validation split, "Cap (train)" otherwise
        head = ["metric"] + [d if split == "validation" else f"{d} ({split})" for d, _, split in parts]
    else:
        head = ["metric"] + sets
    rows = [["loss"] + [f"{result['sets'][s]['loss']:.4f}" if result["sets"][s]["loss"] is not None
                        else "n/a (no data)" for s in sets]]
    for kind, name in METRIC_ROWS:
        row = [f"{kind} {name}"]
        for s in sets:
            value = result["sets"][s]["metrics"].get(kind, {}).get(name)
            row.append("n/a (no data)" if value is None else f"{value:.4f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def _shares(n: int, rank: int, world: int) -> list[Optional[int]]:
    """Rank's items ``rank, rank + world, ...``, padded with None to the same count on every rank."""
    per_rank = math.ceil(n / world) if n else 0
    return [i if i < n else None for i in range(rank, per_rank * world, world)]


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _set_loss(model, processor, config: TrainConfig, source: Source, n: int, rank: int, world: int,
              device, render) -> tuple[float, float]:
    """(sum of token losses, tokens) of this rank's share of the first ``n`` samples."""
    share = _shares(n, rank, world)
    total, tokens = 0.0, 0.0
    size = config.micro_batch_size
    for start in range(0, len(share), size):
        chunk = share[start:start + size]
        examples = []
        for i in chunk:
            got = encode_sample(source.get(0 if i is None else i), processor, config.data, index=i or 0,
                                render=render)
            assign_weights(got, LossConfig())
            if i is None:  # padding items weigh nothing
                for b in (b for ex in got for b in ex.branches):
                    b.weight = 0.0
            examples.extend(got)
        if not examples:
            continue
        rows = plan_rows([len(e) for e in examples], config.data.max_seq_len, config.data.packing)
        batch = collate(examples, rows, processor.tokenizer.pad_token_id)
        with torch.no_grad():
            logits = model(**model_inputs(batch, device, config.model.attn_implementation)).logits
        total += float(weighted_sum(logits, batch["targets"].to(device), batch["weights"]))
        tokens += float(batch["weights"].sum())
    return total, tokens


def _generate(gen_model, processor, prompt: str, media, max_new_tokens: int, fixed_length: bool, device) -> str:
    from transformers.video_utils import VideoMetadata

    kwargs: dict[str, Any] = {}
    if media.kind == "video":
        meta = VideoMetadata(total_num_frames=len(media.frames), fps=1.0, frames_indices=list(media.times))
        kwargs = dict(videos=[media.frames], video_metadata=[meta], do_sample_frames=False)
    else:
        kwargs = dict(images=media.frames)
    inputs = processor(text=prompt, return_tensors="pt", **kwargs).to(device)
    eos = processor.tokenizer.eos_token_id
    # fixed length: no end token stops it, so every rank runs the same forwards (FSDP2)
    gen = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id,
               eos_token_id=None if fixed_length else eos)
    with torch.no_grad():
        out = gen_model.generate(**inputs, **gen)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    if eos in new:
        new = new[:new.index(eos)]
    return processor.tokenizer.decode(new, skip_special_tokens=True)


def _generation_items(sample) -> list[tuple[str, str, Any, dict, dict]]:
    """(prompt, target, media, record, media record) of each record's first question."""
    from schemas.prompts import messages_for, render_chat

    medias = sample_media(sample)
    items = []
    for k, (record, media) in enumerate(zip(sample.records, medias)):
        messages = sample.conversations[k] if sample.conversations else messages_for(sample.dataset, record,
                                                                                      sample.media)
        first = next(i for i, m in enumerate(messages) if m["role"] == "user")
        prompt = render_chat(messages[:first + 1], add_generation_prompt=True, layout="template")
        target = messages[first + 1]["content"]
        items.append((prompt, target if isinstance(target, str) else str(target), media, record, sample.media))
    return items


def evaluate(model, raw_model, processor, config: TrainConfig, sources: Sequence[Source], rank: int, world: int,
             device, render: Callable[[list], str], step: int = 0, out_dir: Optional[Path] = None,
             stream: Optional[TextIO] = None) -> dict[str, Any]:
    """Validation loss and metrics of every validation set of ``config`` (collective).

    Args:
        model: the (possibly wrapped) model for loss forwards.
        raw_model: the unwrapped model (generation for plain and DDP runs).
        processor: the processor.
        config: the run config (``data.validation``, ``eval``).
        sources: one source per validation entry.
        rank, world: this process and the world size.
        device: the device.
        render: messages -> training-layout text.
        step: the step evaluated (names the metrics file).
        out_dir: where ``metrics-step-N.json`` goes (default ``<run_dir>/metrics``).
        stream: where rank 0 prints the table (default stdout).

    Returns:
        ``{"step", "loss" (mean over sets), "sets": {name: {"loss", "metrics", "items"}},
        "thresholds"}`` on every rank; rank 0 also prints the table and writes the file.
    """
    model.eval()
    fixed = config.distributed == "fsdp2"
    gen_model = model if fixed else raw_model
    result: dict[str, Any] = {"step": step, "sets": {}, "thresholds": {**THRESHOLDS,
                                                                        "point_distance_value": config.eval.point_distance}}
    losses = []
    for entry, source in zip(config.data.validation, sources):
        name = f"{entry.dataset}/{entry.version}/{entry.split}"
        n = len(source) if not config.eval.max_samples else min(len(source), config.eval.max_samples)
        loss_sum, tokens = _set_loss(model, processor, config, source, n, rank, world, device, render)
        totals = torch.tensor([loss_sum, tokens], dtype=torch.float64, device=device)
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(totals)
        loss = float(totals[0] / totals[1]) if totals[1] > 0 else None
        if loss is not None:
            losses.append(loss)
        sums: dict[str, dict[str, float]] = {}
        n_items = 0
        if config.eval.generate:
            items = [it for i in range(n) for it in _generation_items(source.get(i))]
            local: list[dict] = []
            for j in _shares(len(items), rank, world):
                prompt, target, media, record, media_record = items[0 if j is None else j]
                pred = _generate(gen_model, processor, prompt, media, config.eval.max_new_tokens, fixed, device)
                if j is not None:
                    local.append(score_answer(entry.dataset, pred, target, record, media_record,
                                              config.eval.point_distance))
            for part in _gather(local, world):
                for scored in part:
                    n_items += 1
                    for kind, values in scored.items():
                        acc = sums.setdefault(kind, {})
                        for k, v in values.items():
                            acc[k] = acc.get(k, 0.0) + float(v)
        result["sets"][name] = {"loss": loss, "metrics": _figures(sums), "items": n_items, "samples": n}
    result["loss"] = sum(losses) / len(losses) if losses else None
    if rank == 0:
        out_dir = Path(out_dir) if out_dir else Path(config.run_dir) / "metrics"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"metrics-step-{step:08d}.json").write_text(json.dumps(result, indent=1, sort_keys=True))
        if result["sets"]:
            print(f"validation at step {step}:\n{format_table(result)}", file=stream or sys.stdout, flush=True)
    model.train()
    return result
