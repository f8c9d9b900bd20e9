"""SynMultiImageQA: rendered sets in the ingest-output layout, and every computed answer is correct.

The answers are checked by an oracle written here, which reads the values from the render items
(what each picture draws) after checking that drawing those items gives exactly the PNG bytes in
the shard; it never looks at the generator's data tables.
"""
from __future__ import annotations

import hashlib
import io
import json
import re

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.render import BarChart, Document, LineChart, PieChart, Table, render_png
from pipelines.synth.cosyn import make_set, render_items
from pipelines.synth.pipeline import run
from schemas.arrow import from_table
from schemas.prompts import messages_for
from shards.reader import iter_samples

N_SETS = 10


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    argv = ["--sets", str(N_SETS), "--split", "train", "--split", "validation", "--max-questions", "10"]
    summary = run("synmultiimageqa", argv + ["--out", str(folder / "rec"), "--media-out", str(folder / "media")])
    shards = json.loads((folder / "media" / "shards.json").read_text())
    samples = {s["__key__"]: s for s in iter_samples([str(folder / "media" / e["shard"]) for e in shards],
                                                      expected_sha256={str(folder / "media" / e["shard"]): e["sha256"]
                                                                       for e in shards}, decode_json=True)}
    return {"folder": folder, "summary": summary, "samples": samples, "argv": argv,
            "records": pq.read_table(folder / "rec" / "SynMultiImageQA.parquet").to_pylist()}


def _number(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def _shown(item) -> tuple[str, dict[str, float]]:
    """(whose figures, {category: value}) as the picture shows them."""
    if isinstance(item, BarChart):
        return item.title.split(": ", 1)[1], dict(zip(item.categories, map(float, item.values)))
    if isinstance(item, LineChart):
        return item.series[0].name, dict(zip(item.x_labels, map(float, item.series[0].values)))
    if isinstance(item, PieChart):
        return item.title.split(": ", 1)[1], dict(zip(item.labels, map(float, item.values)))
    if isinstance(item, Table):
        who = item.title.split(": ", 1)[1] if ": " in item.title else item.title
        return who, {row[0]: _number(row[1]) for row in item.rows}
    assert isinstance(item, Document)
    who = re.search(r" for (.+)\.$", item.lines[0]).group(1) if " for " in item.lines[0] else item.title
    return who, {k: _number(v) for k, v in item.fields}


def _oracle(question: str, shown: list[tuple[str, dict[str, float]]]) -> str:
    """The answer, computed here from what the images show."""
    val = {i + 1: v for i, (_, v) in enumerate(shown)}
    fmt = lambda x: (str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip("."))  # noqa: E731
    if m := re.fullmatch(r"What is the difference between the (.+) values in Image (\d) and Image (\d)\?", question):
        c, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        return fmt(round(abs(val[a][c] - val[b][c]), 2))
    if re.fullmatch(r"Which image has the highest total over all .+\?", question):
        totals = {i: sum(v.values()) for i, v in val.items()}
        return f"Image {max(totals, key=totals.get)}"
    if m := re.fullmatch(r"What is the combined (.+) value across all the images\?", question):
        return fmt(round(sum(v[m.group(1)] for v in val.values()), 2))
    if m := re.fullmatch(r"What is the average (.+) value across the images, to two decimals\?", question):
        col = [v[m.group(1)] for v in val.values()]
        return fmt(round(sum(col) / len(col), 2))
    if m := re.fullmatch(r"Which \w+ has the highest (.+) value\?", question):
        return max(shown, key=lambda s: s[1][m.group(1)])[0]
    if m := re.fullmatch(r"In how many images is the (.+) value above (\d+)\?", question):
        return str(sum(v[m.group(1)] > int(m.group(2)) for v in val.values()))
    if m := re.fullmatch(r"Do Image (\d) and Image (\d) peak in the same \w+\?", question):
        a, b = val[int(m.group(1))], val[int(m.group(2))]
        return "Yes" if max(a, key=a.get) == max(b, key=b.get) else "No"
    prices = val[1]
    cost = {i: sum(q * prices[g] for g, q in v.items()) for i, v in val.items() if i > 1}
    if m := re.fullmatch(r"Using the prices in Image 1, what does the order in Image (\d) cost\?", question):
        return f"${cost[int(m.group(1))]:,.2f}"
    if question == "Using the prices in Image 1, which order costs the most?":
        return f"Image {max(cost, key=cost.get)}"
    if m := re.fullmatch(r"How many (.+) are ordered in all the orders together\?", question):
        return str(int(sum(v.get(m.group(1), 0) for i, v in val.items() if i > 1)))
    raise AssertionError(f"a question the oracle does not know: {question!r}")


def test_every_computed_answer_is_what_the_images_show(generated):
    seeds = {f"synset_{i:06d}": i for i in range(N_SETS)}
    checked = set()
    shown_by_set = {}
    for set_id, sample in generated["samples"].items():
        items = render_items(make_set(set_id, seeds[set_id]))
        for i, item in enumerate(items):
            assert render_png(item) == sample[f"{i}.png"], f"{set_id} image {i} is not the drawing of its data"
        shown_by_set[set_id] = [_shown(item) for item in items]
    for rec in generated["records"]:
        assert rec["answer"] == _oracle(rec["question"], shown_by_set[rec["image_set_id"]]), rec
        said = {"Yes": "the same", "No": "different"}.get(rec["answer"], rec["answer"])
        assert rec["explanation"].endswith(".") and said in rec["explanation"], rec
        checked.add(re.sub(r"Image \d|\d+|Q\d", "#", rec["question"])[:24])
    assert len(generated["records"]) >= 3 * N_SETS and len(checked) >= 6


def test_image_sets_are_written_in_the_ingest_output_layout(generated):
    folder, samples = generated["folder"] / "media", generated["samples"]
    sets = {r.key: r.model_dump() for r in from_table("image_set", pq.read_table(folder / "imagesets.parquet"))}
    assert sorted(sets) == sorted(samples) == [f"synset_{i:06d}" for i in range(N_SETS)]
    for key, record in sets.items():
        assert samples[key]["json"] == json.loads(json.dumps(record))
        assert 2 <= len(record["images"]) <= 5
        assert record["license"] == "CC0-1.0" and record["source"] == "synth.synmultiimageqa"
        assert record["split"] == ("train", "validation")[int(key[-6:]) % 2]
        for i, info in enumerate(record["images"]):
            data = samples[key][f"{i}.png"]
            image = Image.open(io.BytesIO(data))
            assert image.format == "PNG" and image.size == (info["width"], info["height"])
            assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert generated["summary"]["media"] == {"out": str(folder.resolve()), "image_sets": N_SETS,
                                             "images": sum(len(s["images"]) for s in sets.values()), "shards": 1}


def test_records_train_as_cosyn_conversations_about_their_set(generated):
    sets = {r.key: r for r in from_table("image_set", pq.read_table(generated["folder"] / "media" / "imagesets.parquet"))}
    for rec in generated["records"]:
        messages = messages_for("SynMultiImageQA", rec, sets[rec["image_set_id"]])
        user = messages[0]["content"]
        assert [b["image_id"] for b in user if b["type"] == "image"] == rec["image_ids"]
        assert user[-1]["style"] == f"cosyn_{rec['category']}_exp"
        assert messages[1]["content"] == f"{rec['explanation']} Answer: {rec['answer']}"


def test_the_same_run_gives_the_same_bytes(generated, tmp_path):
    run("synmultiimageqa", generated["argv"] + ["--out", str(tmp_path / "rec"), "--media-out", str(tmp_path / "media")])
    first = generated["folder"]
    for rel in ("media/imagesets/imagesets-000000.tar", "media/imagesets.parquet", "media/shards.json",
                "rec/SynMultiImageQA.parquet", "rec/failures.parquet"):
        assert (tmp_path / rel).read_bytes() == (first / rel).read_bytes(), rel
