"""The training loss: Molmo 2's per-message token weights and a weighted cross entropy.

One job: give every label token its weight and turn logits at the loss positions into the
loss the optimizer sees.

Weights follow allenai/molmo2 (``olmo/preprocessing/text_preprocessor.py``, ``MessageWeight``;
per-task figures from ``launch_scripts/sft.py``), which wins over the summary in
../shared/reference/molmo2-formats.md where they differ:

* ``root_length``: each branch's loss tokens get ``2 / sqrt(n)``, n = that branch's loss tokens
  (all answers of the conversation with their ``<|im_end|>``);
* ``root_subsegments``: then ``1 / sqrt(k)``, k = branches of the sample's message tree that were
  kept (after the length policy dropped any);
* a dataset's ``TaskWeight`` multiplies by ``weight`` and may switch the two factors off: the
  released SFT gives pointing and tracking 0.2 and captions 0.1, *without* the two factors.

The loss is ``sum(w * ce) / W`` where ``W`` is the sum of weights over the whole optimizer step
(every micro-batch on every rank; allenai/molmo2 ``batch_divisor=global_batch``), so gradient
accumulation and the number of ranks do not change it. With weighting off every label weighs 1
and the loss is the mean token cross entropy, equal to transformers' own loss for one batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from training.config import LossConfig
from training.processing import Example

__all__ = ["branch_weight", "assign_weights", "token_losses", "weighted_sum"]


def branch_weight(n_labels: int, n_tree: int, dataset: str, cfg: LossConfig) -> float:
    """The weight of each loss token of one branch.

    Args:
        n_labels: the branch's loss tokens.
        n_tree: branches in its message tree.
        dataset: its dataset (looked up in ``cfg.task_weights``).
        cfg: the loss settings.

    Returns:
        1.0 with weighting off; otherwise the product described in the module docstring.
    """
    if not cfg.weighting:
        return 1.0
    task = cfg.task_weights.get(dataset)
    root_length = cfg.root_length if task is None or task.root_length is None else task.root_length
    root_subsegments = (cfg.root_subsegments if task is None or task.root_subsegments is None
                        else task.root_subsegments)
    w = 1.0 if task is None else task.weight
    if root_length and n_labels > 0:
        w *= 2.0 / math.sqrt(n_labels)
    if root_subsegments and n_tree > 0:
        w /= math.sqrt(n_tree)
    return w


def assign_weights(examples: Sequence[Example], cfg: LossConfig) -> None:
    """Set ``branch.weight`` on every branch of every example, in place."""
    for ex in examples:
        for branch in ex.branches:
            branch.weight = branch_weight(branch.n_labels, ex.n_tree, branch.dataset, cfg)


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy of each kept position, in float32.

    Args:
        logits: ``(labels, vocab)`` from the model with ``logits_to_keep=loss_positions``.
        targets: ``(labels,)`` token ids (all below the text vocabulary size).

    Returns:
        ``(labels,)`` losses.
    """
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")


def weighted_sum(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(weights * token_losses)``: divide by the step's total weight to get the loss."""
    return (token_losses(logits, targets) * weights.to(logits.device)).sum()
