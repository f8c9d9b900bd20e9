"""The tiny offline Molmo 2 and sample processing: frame times, visual token counts, labels."""
from __future__ import annotations

import collections
import re

import pytest
import torch

from schemas.sampling import sample_times
from tests.train_helpers import chat, frames, reference_losses, tiny_model, tiny_model_dir, tiny_processor
from training import tiny
from training.packing import collate, plan_rows
from training.processing import Media, answer_spans, build_examples, check_labels, encode_branch


def test_tiny_tokenizer_and_config_follow_the_released_layout():
    proc = tiny_processor()
    tok = proc.tokenizer
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir())
    n_text = config.text_config.vocab_size
    assert tok.convert_tokens_to_ids(list(tiny.VISUAL_TOKENS)) == list(range(n_text, n_text + 10))
    assert all(i < n_text for i in tok.convert_tokens_to_ids(list(tiny.CHAT_TOKENS)))
    assert config.text_config.additional_vocab_size >= 10
    assert config.image_patch_id == tok.convert_tokens_to_ids("<im_patch>")
    assert config.frame_start_token_id == tok.convert_tokens_to_ids("<frame_start>")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    assert proc.image_processor.size["height"] == config.vision_config.image_size[0] == tiny.TINY_CROP
    assert proc.video_processor.do_sample_frames is False
    assert proc.video_processor.do_rescale and proc.video_processor.do_normalize
    # chat tokens are single tokens even inside text
    assert tok("a<|im_start|>b<|im_end|>", add_special_tokens=False)["input_ids"][1] == tok.convert_tokens_to_ids(
        "<|im_start|>")


def test_frame_times_in_the_token_stream_are_the_clips_sample_times():
    proc = tiny_processor()
    times = sample_times(3.3, 128, 2.0)  # 0.0, 0.5, ..., 3.0, 3.3 (last frame kept)
    times[3] = 1.25  # a time whose one-decimal print rounds on the binary float (1.2)
    media = Media("video", frames(len(times)), times)
    stats = collections.Counter()
    (ex,) = build_examples(proc, "clip1", "VideoPoint", [chat("Where?", "Here.")], [media], 4096, stats=stats)
    text = proc.tokenizer.decode(ex.root_ids)
    printed = re.findall(r"(\d+\.\d) <frame_start>", text)
    assert printed == [f"{t:.1f}" for t in times]
    assert printed[3] == "1.2" and printed[-1] == "3.3"
    assert text.startswith("<|im_end|>")  # the processor's BOS (eos, as the released tokenizer)
    assert not stats


def test_visual_token_counts_equal_the_models_features():
    proc, model = tiny_processor(), tiny_model()
    patch = proc.tokenizer.convert_tokens_to_ids("<im_patch>")
    video = Media("video", frames(5, seed=1), [0.0, 0.5, 1.0, 1.5, 1.7])
    images = Media("images", frames(2, seed=2, size=(70, 90)))
    (ev,) = build_examples(proc, "v", "VideoPoint", [chat("Q", "A")], [video], 4096)
    (ei,) = build_examples(proc, "i", "MultiImagePoint",
                           [chat("Q", "A", root="Image 1<|image|>Image 2<|image|>")], [images], 4096)
    # 56 px crops of 14 px patches = 4 x 4 patches; 3 x 3 video pooling -> 2 x 2 tokens per frame
    assert ev.root_ids.count(patch) == 5 * 4 == ev.pooling.shape[0]
    with torch.no_grad():
        for ex in (ev, ei):
            feats = model.model.get_image_features(ex.pixel_values, ex.pooling, ex.grids).pooler_output
            assert sum(f.shape[0] for f in feats) == ex.root_ids.count(patch)
            assert ex.root_mm == [int(t >= model.config.text_config.vocab_size) for t in ex.root_ids]


def test_labels_sit_exactly_on_the_answers_and_their_im_end():
    proc = tiny_processor()
    tok = proc.tokenizer
    text = chat("How many dogs?", "There are 3 dogs.", "Point to them.",
                '<points coords="1 1 100 200">dog</points>', root="<|image|>")
    (ex,) = build_examples(proc, "k", "MultiImagePoint", [text], [Media("images", frames(1, size=(50, 50)))], 4096)
    (branch,) = ex.branches
    labelled = tok.decode([t for t, lab in zip(branch.ids, branch.labels) if lab])
    assert labelled == 'There are 3 dogs.<|im_end|><points coords="1 1 100 200">dog</points><|im_end|>'
    check_labels(ex, tiny_model().config.text_config.vocab_size)
    batch = collate([ex, ex], plan_rows([len(ex), len(ex) - 5], 4096, packing=False), pad_id=tok.pad_token_id)
    assert "mm_token_type_ids" in batch and batch["mm_token_type_ids"].sum() > 0
    labels_at = torch.zeros_like(batch["loss_positions"])
    labels_at[:, 1:] = batch["loss_positions"][:, :-1]
    assert not (labels_at & (batch["mm_token_type_ids"] != 0)).any()  # never on visual tokens
    assert int(labels_at[0, : len(ex.root_ids)].sum()) == 0  # never on the root
    assert int(labels_at.sum()) == 2 * branch.n_labels  # none on padding, all answers twice
    assert batch["targets"].max() < tiny_model().config.text_config.vocab_size


def test_answer_spans_and_a_straddling_token_are_checked():
    conv = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nab<|im_end|>"
    (span,) = answer_spans(conv)
    assert conv[span[0]:span[1]] == "ab<|im_end|>"
    with pytest.raises(ValueError, match="no closing"):
        answer_spans("<|im_start|>assistant\nab")
    with pytest.raises(ValueError, match="no assistant answer"):
        encode_branch(tiny_processor().tokenizer, "<|im_start|>user\nq<|im_end|>", "X")


def test_the_length_policy_drops_branches_then_truncates_or_skips():
    proc = tiny_processor()
    media = Media("video", frames(2), [0.0, 0.5])
    short, long = chat("Q?", "Yes."), chat("Q?", "word " * 60)
    texts = [short, long, short]
    (root_len,) = {len(e.root_ids) for e in build_examples(proc, "k", "Cap", [short], [media], 4096)}
    stats = collections.Counter()
    (ex,) = build_examples(proc, "k", "Cap", texts, [media] * 3, root_len + 40, stats=stats)
    assert len(ex.branches) == 2 and ex.n_tree == 2 and stats == {"dropped_branches": 1}
    stats.clear()
    (ex,) = build_examples(proc, "k", "Cap", [long], [media], root_len + 20, stats=stats)
    assert len(ex) == root_len + 20 and stats == {"truncated": 1}
    assert build_examples(proc, "k", "Cap", [long], [media], root_len + 20, "skip", stats=stats) == []
    assert build_examples(proc, "k", "Cap", [short], [media], root_len, stats=stats) == []
    assert stats == {"truncated": 1, "skipped_too_long": 1, "skipped_visual_too_long": 1}


def test_an_image_and_a_video_sample_train_in_one_forward():
    proc, model = tiny_processor(), tiny_model()
    video = Media("video", frames(3, seed=4), [0.0, 0.5, 0.9])
    images = Media("images", frames(2, seed=5, size=(80, 60)))
    tv, ti = chat("What moves?", "A red ball."), chat("Same?", "No.", root="Image 1<|image|>Image 2<|image|>")
    (ev,) = build_examples(proc, "v", "Cap", [tv], [video], 4096)
    (ei,) = build_examples(proc, "i", "MultiImageQA", [ti], [images], 4096)
    from tests.train_helpers import forward_losses

    for packing in (False, True):
        got = forward_losses(model, [ei, ev], plan_rows([len(ei), len(ev)], 4096, packing))
        want = torch.cat([reference_losses(model, proc, ti, images, ei.branches[0].labels),
                          reference_losses(model, proc, tv, video, ev.branches[0].labels)])
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
