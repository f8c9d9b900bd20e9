"""Packing, message trees and the loss: the same losses as the examples run one by one."""
from __future__ import annotations

import math

import torch

from tests.train_helpers import chat, forward_losses, frames, reference_losses, tiny_model, tiny_processor
from training.config import LossConfig, TaskWeight
from training.loss import assign_weights, branch_weight, token_losses, weighted_sum
from training.packing import MODEL_KEYS, attention_mask, collate, model_inputs, plan_rows
from training.processing import Media, build_examples


def _video(seed, n):
    return Media("video", frames(n, seed=seed), [0.5 * i for i in range(n)])


def test_plan_rows_first_fit_longest_first():
    assert plan_rows([5, 7, 3, 4], 10, packing=True) == [[1, 2], [0, 3]]
    assert plan_rows([5, 7], 10, packing=False) == [[0], [1]]
    try:
        plan_rows([11], 10, packing=True)
    except ValueError as exc:
        assert "more than max_seq_len" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an over-long example must be refused")


def test_a_packed_batch_gives_the_losses_of_its_examples_run_one_by_one():
    proc, model = tiny_processor(), tiny_model()
    texts = [chat("What moves?", "A ball."), chat("Count them.", "There are 2."),
             chat("Where?", "Left.", root="Image 1<|image|>Image 2<|image|>")]
    media = [_video(0, 3), _video(7, 2), Media("images", frames(2, seed=3, size=(60, 70)))]
    examples = [build_examples(proc, f"k{i}", "Cap", [t], [m], 4096)[0] for i, (t, m) in enumerate(zip(texts, media))]
    rows = plan_rows([len(e) for e in examples], sum(len(e) for e in examples), packing=True)
    assert rows == [[0, 1, 2]]  # all three in one row
    got = forward_losses(model, examples, rows)
    want = torch.cat([reference_losses(model, proc, t, m, e.branches[0].labels)
                      for t, m, e in zip(texts, media, examples)])
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_a_message_tree_gives_the_losses_of_its_branches_run_one_by_one():
    proc, model = tiny_processor(), tiny_model()
    media = _video(11, 4)
    texts = [chat("Point to the ball.", '<points coords="0.5 1 100 200">ball</points>'),
             chat("How many?", "There are 2.", "Sure?", "Yes."),
             chat("Describe.", "A red ball rolls left.")]
    (tree,) = build_examples(proc, "clip", "VideoPoint", texts, [media] * 3, 4096)
    assert len(tree.branches) == 3 and tree.n_tree == 3
    assert len(tree) < sum(len(tree.root_ids) + len(b.ids) for b in tree.branches)  # visual tokens once
    got = forward_losses(model, [tree], [[0]])
    want = torch.cat([reference_losses(model, proc, t, media, b.labels) for t, b in zip(texts, tree.branches)])
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    # a tree and a plain example packed together, and unrolled trees: still the same losses
    (other,) = build_examples(proc, "c2", "Cap", [texts[2]], [_video(3, 2)], 4096)
    got2 = forward_losses(model, [tree, other], [[0, 1]])
    want2 = torch.cat([want, reference_losses(model, proc, texts[2], _video(3, 2), other.branches[0].labels)])
    torch.testing.assert_close(got2, want2, atol=2e-5, rtol=1e-5)
    unrolled = build_examples(proc, "clip", "VideoPoint", texts, [media] * 3, 4096, message_tree=False)
    assert [len(u.branches) for u in unrolled] == [1, 1, 1] and {u.n_tree for u in unrolled} == {3}
    got3 = forward_losses(model, unrolled, plan_rows([len(u) for u in unrolled], 4096, packing=True))
    torch.testing.assert_close(got3, want, atol=2e-5, rtol=1e-5)


def test_position_id_packing_alone_leaks_visual_attention_across_examples():
    """Pins why packing passes a 4D mask: transformers 5.23 joins all visual tokens of a row in one
    two-way block after its packed-sequence mask. If this starts failing, position-id packing got
    safe and the 4D mask is only needed for message trees."""
    proc, model = tiny_processor(), tiny_model()
    texts = [chat("What?", "A ball."), chat("What?", "A box.")]
    examples = [build_examples(proc, f"k{i}", "Cap", [t], [_video(20 + i, 2)], 4096)[0] for i, t in enumerate(texts)]
    batch = collate(examples, [[0, 1]], pad_id=0)
    inputs = {k: batch[k] for k in MODEL_KEYS if k in batch}  # position ids restart; no mask
    with torch.no_grad():
        leaky = token_losses(model(**inputs, logits_to_keep=batch["loss_positions"]).logits, batch["targets"])
    masked = forward_losses(model, examples, [[0, 1]])
    assert (leaky - masked).abs().max() > 1e-3


def test_unit_weights_equal_the_models_own_loss():
    proc, model = tiny_processor(), tiny_model()
    (ex,) = build_examples(proc, "k", "Cap", [chat("Q?", "An answer here.")], [_video(1, 2)], 4096)
    assign_weights([ex], LossConfig())
    batch = collate([ex], [[0]], pad_id=0)
    inputs = {k: batch[k] for k in MODEL_KEYS if k in batch}  # one example: the model's own mask
    labels = torch.full_like(batch["input_ids"], -100)
    at = torch.zeros_like(batch["loss_positions"])
    at[:, 1:] = batch["loss_positions"][:, :-1]
    labels[at] = batch["input_ids"][at]
    with torch.no_grad():
        builtin = model(**inputs, labels=labels).loss
        ours = weighted_sum(model(**model_inputs(batch, "cpu")).logits, batch["targets"],
                            batch["weights"]) / batch["weights"].sum()
    torch.testing.assert_close(ours, builtin, atol=1e-6, rtol=1e-6)


def test_molmo2_token_weighting_computed_by_hand():
    proc, model = tiny_processor(), tiny_model()
    cfg = LossConfig(weighting=True, task_weights={"Cap": TaskWeight(weight=0.1, root_length=False,
                                                                     root_subsegments=False)})
    assert LossConfig().weighting is False and branch_weight(9, 3, "X", LossConfig()) == 1.0
    media = _video(5, 3)
    texts = [chat("Q1?", "Short."), chat("Q2?", "A much longer answer with more words.", "Q3?", "Ok.")]
    (tree,) = build_examples(proc, "k", "VideoPoint", texts, [media] * 2, 4096)
    (cap,) = build_examples(proc, "c", "Cap", [chat("Describe.", "A ball.")], [_video(6, 2)], 4096)
    examples = [tree, cap]
    assign_weights(examples, cfg)
    per_token = forward_losses(model, examples, [[0, 1]])
    # by hand: branch b of the VideoPoint tree weighs 2/sqrt(n_b) * 1/sqrt(2); the caption 0.1
    n = [b.n_labels for b in tree.branches] + [cap.branches[0].n_labels]
    hand_w = [2 / math.sqrt(n[0]) / math.sqrt(2)] * n[0] + [2 / math.sqrt(n[1]) / math.sqrt(2)] * n[1] + [0.1] * n[2]
    hand = sum(w * float(l) for w, l in zip(hand_w, per_token)) / sum(hand_w)
    batch = collate(examples, [[0, 1]], pad_id=0)
    with torch.no_grad():
        logits = model(**model_inputs(batch, "cpu")).logits
    ours = weighted_sum(logits, batch["targets"], batch["weights"]) / batch["weights"].sum()
    assert math.isclose(float(ours), hand, rel_tol=1e-5)
    assert batch["weights"].tolist() == torch.tensor(hand_w).tolist()


def test_the_mask_rules_and_eager_attention_agree_with_sdpa():
    # one row: example 0 = root (visual, text) + branches 0 and 1; example 1 = root + one branch; padding
    ex = torch.tensor([[0, 0, 0, 0, 0, 1, 1, -1]], dtype=torch.int32)
    br = torch.tensor([[-1, -1, 0, 1, 1, -1, 0, -1]], dtype=torch.int32)
    mm = torch.tensor([[1, 1, 0, 0, 0, 1, 0, 0]])
    m = attention_mask(ex, br, mm)[0, 0].int().tolist()
    assert m == [[1, 1, 0, 0, 0, 0, 0, 0],   # visual tokens of a root see each other both ways
                 [1, 1, 0, 0, 0, 0, 0, 0],
                 [1, 1, 1, 0, 0, 0, 0, 0],   # branch 0 sees the root and itself
                 [1, 1, 0, 1, 0, 0, 0, 0],   # branch 1 does not see branch 0
                 [1, 1, 0, 1, 1, 0, 0, 0],
                 [0, 0, 0, 0, 0, 1, 0, 0],   # example 1 sees nothing of example 0
                 [0, 0, 0, 0, 0, 1, 1, 0],
                 [0, 0, 0, 0, 0, 0, 0, 1]]   # padding sees itself only
    proc = tiny_processor()
    from transformers import Molmo2ForConditionalGeneration

    from tests.train_helpers import tiny_model_dir

    eager = Molmo2ForConditionalGeneration.from_pretrained(tiny_model_dir(), attn_implementation="eager").eval()
    examples = [build_examples(proc, "t", "Cap", [chat("A?", "B."), chat("C?", "D.")], [_video(4, 2)] * 2, 4096)[0],
                build_examples(proc, "u", "Cap", [chat("E?", "F.")], [_video(5, 3)], 4096)[0]]
    batch = collate(examples, [[0, 1]], pad_id=0)
    with torch.no_grad():
        got = token_losses(eager(**model_inputs(batch, "cpu", "eager")).logits, batch["targets"])
    torch.testing.assert_close(got, forward_losses(tiny_model(), examples, [[0, 1]]), atol=2e-5, rtol=1e-5)
