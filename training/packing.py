"""Packing and message trees: examples into rows, with position ids, a 4D mask and folded pixels.

One job: lay a micro-batch of :class:`training.processing.Example` objects out as model inputs.

* **Rows.** With packing, examples go into rows of at most ``max_seq_len`` tokens, first fit,
  longest first (ties keep input order, so the layout is deterministic); without, one per row.
* **Position ids** restart at 0 for every example; a message tree's branches all start right
  after its root (``len(root)``), so each branch sees the positions it would see alone
  (allenai/molmo2 ``build_subsegment_pos_ids``).
* **The 4D mask** ``(rows, 1, L, L)``: a token attends to earlier tokens of its own example's root
  and of its own branch (causal), and every visual token of a root attends to every other visual
  token of the same root, both ways. The batch carries it compactly (``example_ids``,
  ``branch_ids``, ``mm_token_type_ids`` per token) and ``model_inputs`` builds it on the device
  the forward runs on: a 16k-token row's mask is 256 MB, too much to build on a loader worker's
  CPU and pass through shared memory every step. Why always a mask, even for plain packing: transformers 5.23
  adds Molmo 2's two-way visual block (``block_sequence_ids``) *after* its packed-sequence mask
  from restarting position ids, with every visual token in one block, so packing by position ids
  alone lets the visual tokens of different examples attend to each other (measured: token
  losses differ by 0.03 on the tiny model; pinned in tests/test_train_packing.py). A 4D mask is
  taken as given, so it must carry that visual block itself, which it does. Padding tokens attend
  to themselves only and carry no loss. ``sdpa`` takes the boolean mask, ``eager`` an additive one.
* **Pixels** of every example, image or video, are folded into the image path: crops
  concatenated, pooling indices shifted by the patches before them and padded to the widest
  pooling with -1, rows ordered as the visual tokens appear (row-major), which is the order the
  model scatters features in. One forward then takes images and videos together.
* **Loss positions**: ``loss_positions[r, p-1]`` is true when token ``p`` of row ``r`` is a label;
  ``targets`` and ``weights`` list those labels in the same (row-major) order. They feed
  ``logits_to_keep`` so logits are only computed where a loss is taken.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from training.processing import Example

__all__ = ["plan_rows", "collate", "attention_mask", "model_inputs", "MODEL_KEYS"]

MODEL_KEYS = ("input_ids", "position_ids", "mm_token_type_ids", "pixel_values", "image_token_pooling",
              "image_grids")
"""Batch entries passed to the model's forward as they are (the mask is built by ``model_inputs``)."""


def plan_rows(lengths: Sequence[int], max_seq_len: int, packing: bool) -> list[list[int]]:
    """Assign examples to rows.

    Args:
        lengths: token count of each example (each <= ``max_seq_len``).
        max_seq_len: row capacity.
        packing: first-fit-decreasing packing, or one example per row.

    Returns:
        Rows as lists of example indices; within a row, examples keep their input order.

    Raises:
        ValueError: an example longer than ``max_seq_len``.
    """
    for i, n in enumerate(lengths):
        if n > max_seq_len:
            raise ValueError(f"example {i} has {n} tokens, more than max_seq_len={max_seq_len}")
    if not packing:
        return [[i] for i in range(len(lengths))]
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_seq_len - lengths[i])
    return [sorted(r) for r in rows]


def _example_layout(ex: Example) -> tuple[list[int], list[int], list[int], list[bool], list[float], list[int]]:
    """Ids, mm types, positions, labels, weights and branch ids (-1 = root) of one example."""
    n_root = len(ex.root_ids)
    ids, mm, pos = list(ex.root_ids), list(ex.root_mm), list(range(n_root))
    labels, weights = [False] * n_root, [0.0] * n_root
    branch = [-1] * n_root
    for b, br in enumerate(ex.branches):
        ids += br.ids
        mm += [0] * len(br.ids)
        pos += range(n_root, n_root + len(br.ids))
        labels += br.labels
        weights += [br.weight if lab else 0.0 for lab in br.labels]
        branch += [b] * len(br.ids)
    return ids, mm, pos, labels, weights, branch


def collate(examples: Sequence[Example], rows: Sequence[Sequence[int]], pad_id: int) -> dict[str, Any]:
    """Build the model inputs and loss targets of one micro-batch.

    Args:
        examples: the encoded examples.
        rows: from ``plan_rows``.
        pad_id: padding token id.

    Returns:
        ``input_ids``, ``position_ids``, ``mm_token_type_ids``, ``example_ids`` (index of the
        token's example in its row, -1 on padding) and ``branch_ids`` (-1 on roots) (rows, L);
        ``pixel_values``, ``image_token_pooling``, ``image_grids`` when any example has pixels;
        ``loss_positions`` (rows, L) bool, ``targets`` and ``weights`` (labels,); ``n_examples``,
        ``keys`` and ``indices`` (global sample indices) for bookkeeping.
    """
    layouts = [_example_layout(ex) for ex in examples]
    width = max(sum(len(layouts[i][0]) for i in row) for row in rows)
    n_rows = len(rows)
    input_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    mm = torch.zeros((n_rows, width), dtype=torch.long)
    example_ids = torch.full((n_rows, width), -1, dtype=torch.int32)
    branch_ids = torch.full((n_rows, width), -1, dtype=torch.int32)
    label_mask = torch.zeros((n_rows, width), dtype=torch.bool)
    weight_grid = torch.zeros((n_rows, width), dtype=torch.float32)
    pixels, pooling, grids = [], [], []
    patch_offset = 0
    for r, row in enumerate(rows):
        at = 0
        for slot, i in enumerate(row):
            ids, mmi, pos, labels, weights, branch = layouts[i]
            n = len(ids)
            input_ids[r, at:at + n] = torch.tensor(ids)
            position_ids[r, at:at + n] = torch.tensor(pos)
            mm[r, at:at + n] = torch.tensor(mmi)
            example_ids[r, at:at + n] = slot
            branch_ids[r, at:at + n] = torch.tensor(branch, dtype=torch.int32)
            label_mask[r, at:at + n] = torch.tensor(labels)
            weight_grid[r, at:at + n] = torch.tensor(weights)
            ex = examples[i]
            if ex.pixel_values is not None:
                pixels.append(ex.pixel_values)
                pool = ex.pooling
                pooling.append(torch.where(pool >= 0, pool + patch_offset, pool))
                grids.append(ex.grids)
                patch_offset += ex.pixel_values.shape[0] * ex.pixel_values.shape[1]
            at += n
    keep = torch.zeros_like(label_mask)
    keep[:, :-1] = label_mask[:, 1:]
    batch: dict[str, Any] = {
        "input_ids": input_ids, "position_ids": position_ids, "mm_token_type_ids": mm,
        "example_ids": example_ids, "branch_ids": branch_ids,
        "loss_positions": keep, "targets": input_ids[label_mask], "weights": weight_grid[label_mask],
        "n_examples": len(examples), "keys": [ex.key for ex in examples],
        "indices": sorted({ex.index for ex in examples}),
    }
    if pixels:
        pool_w = max(p.shape[1] for p in pooling)
        pooling = [torch.cat([p, p.new_full((p.shape[0], pool_w - p.shape[1]), -1)], 1) for p in pooling]
        batch["pixel_values"] = torch.cat(pixels)
        batch["image_token_pooling"] = torch.cat(pooling)
        batch["image_grids"] = torch.cat(grids)
    return batch


def attention_mask(example_ids: torch.Tensor, branch_ids: torch.Tensor, mm_token_type_ids: torch.Tensor,
                   attn_implementation: str = "sdpa", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(rows, 1, L, L)`` mask of a collated batch, built where its inputs are (e.g. the GPU).

    Token q sees token k when both belong to the same example and k is not later than q and k is
    in q's branch or in the root, or when both are visual tokens of that example (two-way).
    Padding sees itself only (no empty softmax row).

    Returns:
        A boolean mask (``sdpa``: True = attend) or, for ``eager``, an additive one in ``dtype``.
    """
    n = example_ids.shape[1]
    pos = torch.arange(n, device=example_ids.device)
    ex_q, ex_k = example_ids[:, :, None], example_ids[:, None, :]
    br_q, br_k = branch_ids[:, :, None], branch_ids[:, None, :]
    vis = mm_token_type_ids == 1
    mask = (pos[None, None, :] <= pos[None, :, None]) & ((br_k == br_q) | (br_k == -1))
    mask |= vis[:, :, None] & vis[:, None, :]
    mask &= (ex_q == ex_k) & (ex_q >= 0)
    mask |= torch.eye(n, dtype=torch.bool, device=example_ids.device)[None]
    mask = mask[:, None]
    if attn_implementation == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
    return mask


def model_inputs(batch: dict[str, Any], device: torch.device | str, attn_implementation: str = "sdpa",
                 dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The forward arguments of a collated batch on ``device``: inputs, the 4D mask, and
    ``logits_to_keep`` (logits only at the loss positions)."""
    inputs = {k: batch[k].to(device, non_blocking=True) for k in MODEL_KEYS if k in batch}
    inputs["attention_mask"] = attention_mask(batch["example_ids"].to(device), batch["branch_ids"].to(device),
                                              inputs["mm_token_type_ids"], attn_implementation, dtype)
    inputs["logits_to_keep"] = batch["loss_positions"].to(device, non_blocking=True)
    return inputs
