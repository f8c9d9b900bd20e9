"""Tests of pipelines.ingest.images: image checks and re-encoding, grouping rows into sets, in-set dedupe."""
from __future__ import annotations

import hashlib
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from pipelines.ingest.dedupe import hamming
from pipelines.common.errors import InputError
from pipelines.ingest.images import (
    GroupedSet, ImageResult, Leftover, dedupe_images_in_set, group_images, inspect_image, set_id,
    split_sizes,
)
from pipelines.ingest.manifest import parse_row


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def picture(width: int = 200, height: int = 100, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def error_of(data: bytes, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        inspect_image(data, "imäge.bin", 128, **kwargs)
    assert info.value.stage == "image" and info.value.message.startswith("imäge.bin: ")
    return info.value


# ---- inspect_image ---------------------------------------------------------------------------


def test_jpeg_is_checked_resized_and_reencoded_deterministically():
    data = encode(picture(), "JPEG", quality=95)
    result = inspect_image(data, "a.jpg", 64)
    assert (result.width, result.height, result.format, result.ext) == (200, 100, "JPEG", "jpg")
    assert (result.stored_width, result.stored_height) == (64, 32)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(result.data)) as stored:
        assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (64, 32))
        assert "exif" not in stored.info and "icc_profile" not in stored.info
    assert inspect_image(data, "again.jpg", 64).data == result.data
    small = inspect_image(data, "a.jpg", 1000)  # never upscaled
    assert (small.stored_width, small.stored_height) == (200, 100)
    assert hamming(small.phash, result.phash) <= 6  # phash of the stored image


def test_png_with_alpha_stays_png_with_alpha():
    image = picture(120, 90).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((120, 90)))
    result = inspect_image(encode(image, "PNG"), "alpha.png", 60)
    assert (result.ext, result.format, result.stored_width, result.stored_height) == ("png", "PNG", 60, 45)
    with Image.open(io.BytesIO(result.data)) as stored:
        assert stored.format == "PNG" and stored.mode == "RGBA"
        assert stored.getchannel("A").getextrema()[0] < 50  # transparency kept
    palette = Image.new("P", (40, 40))
    palette_png = encode(palette, "PNG", transparency=0)
    assert inspect_image(palette_png, "p.png", 64).ext == "png"


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "TIFF"])
def test_lossless_inputs_stay_lossless_png(fmt):
    image = Image.new("RGB", (90, 60), (255, 255, 255))
    image.paste((220, 30, 30), (10, 10, 40, 40))  # line art: flat colours, hard edges
    image.paste((30, 80, 220), (50, 20, 80, 50))
    data = encode(image.quantize(4) if fmt == "GIF" else image, fmt)
    result = inspect_image(data, f"art.{fmt.lower()}", 128)
    assert (result.ext, result.format) == ("png", fmt)
    with Image.open(io.BytesIO(result.data)) as stored, Image.open(io.BytesIO(data)) as given:
        assert stored.format == "PNG" and stored.mode == "RGB" and not stored.info.keys() - {"dpi"}
        assert np.array_equal(np.asarray(stored), np.asarray(given.convert("RGB")))  # every pixel exact
    if fmt != "GIF":
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(result.data))), np.asarray(image))
    jpeg = inspect_image(encode(image, "JPEG", quality=95), "art.jpg", 128)
    assert jpeg.ext == "jpg"  # lossy stays JPEG


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(picture(200, 100), "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.size == (200, 100) and raw.getexif()[0x0112] == 6
    result = inspect_image(data, "rotated.jpg", 50)
    assert (result.width, result.height) == (100, 200)
    assert (result.stored_width, result.stored_height) == (25, 50)


@pytest.mark.parametrize("make, slug", [
    (lambda: b"", "empty"),
    (lambda: b"this is not an image at all", "not_an_image"),
    (lambda: "plain text, ünïcode".encode("utf-8"), "not_an_image"),
    (lambda: encode(picture(), "JPEG")[:600], "truncated"),
    (lambda: encode(picture(), "PNG")[:300], "truncated"),
    (lambda: encode(picture(20, 200), "PNG"), "too_small"),
])
def test_bad_inputs_are_input_errors(make, slug):
    assert error_of(make()).error_type == slug


def test_pixel_count_is_checked_before_decoding():
    data = encode(picture(200, 100), "PNG")
    error = error_of(data, max_pixels=19_999)
    assert error.error_type == "too_many_pixels" and "200x100" in error.message
    assert inspect_image(data, "ok.png", 128, max_pixels=20_000).width == 200


def test_corrupt_png_checksum_is_caught_by_verify():
    data = bytearray(encode(picture(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF  # inside the compressed pixels: CRC no longer matches
    assert error_of(bytes(data)).error_type in ("corrupt", "truncated")


def test_dedupe_images_in_set():
    a = inspect_image(encode(picture(seed=1), "PNG"), "a", 64)
    b = inspect_image(encode(picture(seed=2), "PNG"), "b", 64)
    assert dedupe_images_in_set([a, b, a, b, a]) == [None, None, 0, 1, 0]
    assert dedupe_images_in_set([]) == []


# ---- grouping ------------------------------------------------------------------------------


def row(input_id: str, group: str) -> dict:
    return {"input_id": input_id, "group": group, "image": f"https://example.com/{input_id}.jpg"}


@pytest.mark.parametrize("n, sizes", [(2, [2]), (5, [5]), (6, [3, 3]), (7, [4, 3]), (10, [5, 5]),
                                      (11, [4, 4, 3]), (12, [4, 4, 4]), (16, [4, 4, 4, 4])])
def test_split_sizes(n, sizes):
    assert split_sizes(n) == sizes


ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text("abcé中-", min_size=1, max_size=6),
                       st.lists(ids, min_size=1, max_size=12, unique=True), max_size=4))
def test_group_images_properties(groups):
    rows = [row(f"{label}|{i}", label) for label, members in groups.items() for i in members]
    rows.reverse()
    sets, leftovers = group_images(rows)
    placed = [i for s in sets for i in s.input_ids] + [left.input_id for left in leftovers]
    assert sorted(placed) == sorted(r["input_id"] for r in rows)  # every image exactly once
    assert all(2 <= len(s.input_ids) <= 5 for s in sets)
    assert {left.group for left in leftovers} == {g for g, m in groups.items() if len(m) == 1}
    for label, members in groups.items():
        mine = [s for s in sets if s.group == label]
        if len(members) > 1:
            assert [len(s.input_ids) for s in mine] == split_sizes(len(members))
            assert [i for s in mine for i in s.input_ids] == sorted(f"{label}|{i}" for i in members)
    for s in sets:
        assert re.fullmatch(r"[0-9a-f]{16}", s.set_id) and s.set_id == set_id(reversed(s.input_ids))
        assert s.images == tuple(f"https://example.com/{i}.jpg" for i in s.input_ids)
    assert group_images(reversed(rows)) == (sets, leftovers)  # input order does not matter


def test_group_images_example_with_non_ascii_ids_and_objects():
    rows = [row(f"bild-ü{i}", "städte") for i in (3, 1, 2, 0, 6, 5, 4)] + [row("單", "alone")]
    rows.append(SimpleNamespace(input_id="obj-1", group="objs", images=("one.jpg",)))
    rows.append(SimpleNamespace(input_id="obj-0", group="objs", image="zero.jpg"))
    sets, leftovers = group_images(rows)
    assert [(s.group, s.input_ids) for s in sets] == [
        ("objs", ("obj-0", "obj-1")),
        ("städte", ("bild-ü0", "bild-ü1", "bild-ü2", "bild-ü3")),
        ("städte", ("bild-ü4", "bild-ü5", "bild-ü6")),
    ]
    assert sets[0].images == ("zero.jpg", "one.jpg")
    assert set_id(["bild-ü0", "bild-ü1", "bild-ü2", "bild-ü3"]) == sets[1].set_id == "a6da57801bd5ec58"
    assert leftovers == [Leftover("單", "alone", "singleton_group", leftovers[0].message, rows[7])]
    error = leftovers[0].to_error()
    assert (error.stage, error.error_type) == ("image", "singleton_group") and "單" in error.message
    assert isinstance(sets[0], GroupedSet) and not isinstance(sets[0], ImageResult)


@pytest.mark.parametrize("field", ["license", "source", "split"])
def test_a_group_whose_rows_disagree_fails_whole_naming_field_and_values(field):
    """No set is made of a group whose rows disagree on a field the set carries once; each of
    its rows fails, naming the field and every value with the rows that gave it (a value given by
    some rows only is a disagreement too). Other groups are unaffected."""
    values = {"license": ("CC-BY-4.0", "MIT"), "source": ("flickr", "coco"), "split": ("train", "test")}[field]
    rows = [parse_row({"id": f"a{i}", "image": f"a{i}.jpg", "group": "g.1", field: values[i % 2]}, i)
            for i in range(4)]
    rows.append(parse_row({"id": "a4", "image": "a4.jpg", "group": "g.1"}, 4))
    rows += [parse_row({"id": f"b{i}", "image": f"b{i}.jpg", "group": "ok", field: values[0]}, 10 + i)
             for i in range(2)]
    sets, leftovers = group_images(rows)
    assert [s.input_ids for s in sets] == [("b0", "b1")]
    assert [left.input_id for left in leftovers] == ["a0", "a1", "a2", "a3", "a4"]
    assert {left.error_type for left in leftovers} == {"conflicting_group_field"}
    a, b = sorted(values)
    for left in leftovers:
        assert left.message.startswith(f"{left.input_id}: the rows of group 'g.1' disagree on {field!r}: ")
        assert f"{a!r} ({', '.join(r.input_id for r in rows[:4] if getattr(r, field) == a)})" in left.message
        assert f"{b!r} ({', '.join(r.input_id for r in rows[:4] if getattr(r, field) == b)})" in left.message
        assert "not given (a4)" in left.message
        assert left.row.input_id == left.input_id
        assert (left.to_error().stage, left.to_error().error_type) == ("image", "conflicting_group_field")


def test_a_group_agreeing_on_every_field_is_one_set_with_those_values():
    rows = [parse_row({"id": f"c{i}", "image": f"c{i}.jpg", "group": "g", "license": "MIT", "split": "test"}, i)
            for i in range(3)]
    sets, leftovers = group_images(rows)
    assert leftovers == [] and [s.input_ids for s in sets] == [("c0", "c1", "c2")]
    several = [parse_row({"id": f"d{i}", "image": f"d{i}.jpg", "group": "g", "source": "x" if i else "y"}, i)
               for i in range(7)]  # a group of 7 would be two sets: it still fails as one group
    sets, leftovers = group_images(several)
    assert sets == [] and len(leftovers) == 7 and "'x' (d1, d2, d3, d4, d5 and 1 more) vs 'y' (d0)" in leftovers[0].message


def test_group_images_rejects_caller_bugs():
    with pytest.raises(ValueError, match="twice"):
        group_images([row("a", "g"), row("a", "g")])
    with pytest.raises(ValueError, match="needs input_id"):
        group_images([{"input_id": "a", "image": "x.jpg"}])
    assert group_images([]) == ([], [])
