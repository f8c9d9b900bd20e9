"""Validation scoring: metrics by dataset on hand-made answers, the table, fixed-length generation."""
from __future__ import annotations

import torch

from tests.train_helpers import tiny_model, tiny_processor, video_point_sample
from training.evaluate import METRIC_ROWS, _figures, _generate, _generation_items, format_table, score_answer


def _pool(scored: list[dict]) -> dict:
    sums: dict = {}
    for item in scored:
        for kind, values in item.items():
            acc = sums.setdefault(kind, {})
            for k, v in values.items():
                acc[k] = acc.get(k, 0.0) + float(v)
    return _figures(sums)


def test_multiple_choice_and_qa_on_hand_made_records():
    record = {"key": "q1", "count": 0}
    mc = [score_answer("CapQA", pred, "B. Yellow", record, {}, 0.05)
          for pred in ("B. Yellow", "B", "Yellow", "C. Red")]
    assert _pool(mc)["multiple_choice"] == {"accuracy": 0.75}
    qa = [score_answer("AskModelAnything", pred, "A red ball.", record, {}, 0.05)
          for pred in ("a red ball", "A blue ball.")]
    figures = _pool(qa)["qa"]
    assert figures["match"] == 0.5 and 0.5 < figures["token_f1"] < 1.0


def test_pointing_counting_and_tracking_pool_over_items():
    clip = {"start": 0.0, "end": 2.0, "timestamps": [0.0, 0.5, 1.0, 1.5, 2.0]}
    target = '<points coords="0.5 1 100 200 2 500 500">dot</points>'
    scored = [score_answer("VideoPoint", '<points coords="0.5 1 101 201">dot</points>', target, {"count": 2}, clip, 0.05),
              score_answer("VideoPoint", "There are none.", target, {"count": 2}, clip, 0.05)]
    figures = _pool(scored)
    assert figures["pointing"] == {"precision": 1.0, "recall": 0.25, "f1": 0.4}  # 1 hit of 4 true, 1 predicted
    assert figures["counting"] == {"exact": 0.0, "close": 0.5}  # 1 point is within 1 of 2; 0 points is not
    stated = 'Counting the <points coords="0.5 1 100 200 2 500 500">dot</points> shows a total of 2.'
    counted = _pool([score_answer("VideoPoint", "Counting the dots shows a total of 2.", stated, {"count": 2}, clip,
                                  0.05)])
    assert counted["counting"] == {"exact": 1.0, "close": 1.0}  # read from the text: no points needed
    track = '<tracks coords="0.0 1 100 100;0.5 1 120 100">car</tracks>'
    t = _pool([score_answer("VideoTrack", track, track, {}, clip, 0.05)])
    assert t["tracking"] == {"frame_f1": 1.0, "id_switches": 0.0}
    assert _pool([score_answer("Cap", "a caption", "a caption", {}, clip, 0.05)]) == {k: {} for k, _ in METRIC_ROWS}


def test_the_table_says_n_a_where_a_set_has_no_data():
    result = {"sets": {"VideoPoint/1.0.0/validation": {"loss": 1.25, "metrics": {"pointing": {"precision": 0.5}}},
                       "Empty/1.0.0/validation": {"loss": None, "metrics": {}}}}
    table = format_table(result).splitlines()
    assert table[0].split() == ["metric", "VideoPoint", "Empty"]  # one version: names only
    assert table[2].split() == ["loss", "1.2500", "n/a", "(no", "data)"]
    assert "pointing precision        0.5000" in table[3] and table[-1].endswith("n/a (no data)")
    assert len(table) == 2 + 1 + len(METRIC_ROWS)
    result["sets"]["Cap/2.0.0/train"] = {"loss": 2.0, "metrics": {}}
    assert format_table(result).splitlines()[0].split()[-1] == "Cap/2.0.0/train"  # versions differ: in full
    del result["sets"]["Cap/2.0.0/train"]
    result["sets"]["Cap/1.0.0/train"] = {"loss": 2.0, "metrics": {}}
    assert format_table(result).splitlines()[0].endswith("Cap (train)")


def test_fixed_length_generation_is_the_normal_answer_cut_at_the_end_token():
    model, processor = tiny_model(), tiny_processor()
    prompt, _, media, _, _ = _generation_items(video_point_sample("c", 1))[0]
    calls = [0]
    model.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
    with torch.no_grad():  # make the end token likely after a few tokens
        model.lm_head.weight[processor.tokenizer.eos_token_id] += 3.0
    normal = _generate(model, processor, prompt, media, 12, False, "cpu")
    normal_calls, calls[0] = calls[0], 0
    fixed = _generate(model, processor, prompt, media, 12, True, "cpu")
    assert fixed == normal and calls[0] == 12 and normal_calls <= 12
