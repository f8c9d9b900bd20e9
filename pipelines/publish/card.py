"""The dataset card: ``README.md`` of a version, whose YAML header makes it loadable by ``datasets``.

One job: write the card from the manifest, the stats and the member names the run saw.

The YAML header is what ``datasets.load_dataset("<root>/<dataset>/<version>")`` reads with no
other argument (see ../shared/reference/molmo2-model.md, "Hugging Face datasets on WebDataset
tars"): ``configs`` with one ``default`` config whose per-split ``data_files`` glob the split's
tars, and ``dataset_info`` with the same ``config_name``, the exact ``splits`` sizes (so two
versions never share a cache entry) and ``features`` generated from a ``datasets.Features``
object: ``__key__``, ``__url__``, ``json`` as ``Json()`` (arbitrary JSON back exactly) and an
``Image()`` column for **every** frame member any sample has (``000.jpg`` ...), because frames
past the declared columns are dropped silently. Samples with fewer frames get None there.

The body says what the dataset holds, where it came from (sources and licenses with counts,
inputs with their hashes), how it was made (code version, settings, record and dataset rules,
exclusions and failures by reason) and how to read it.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import yaml

__all__ = ["features_for", "card_header", "render_card", "FRAME_EXTENSIONS"]

FRAME_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def _frame_sort(name: str) -> tuple[int, str]:
    number, _, ext = name.partition(".")
    return int(number), ext


def features_for(members: list[str]) -> Any:
    """A ``datasets.Features`` with ``__key__``, ``__url__``, ``json`` and every frame member.

    Raises:
        ValueError: a member that is neither ``json`` nor a numbered image.
    """
    import datasets

    frames = []
    for name in members:
        if name == "json":
            continue
        number, _, ext = name.partition(".")
        if not number.isdigit() or ext not in FRAME_EXTENSIONS:
            raise ValueError(f"member {name!r} is neither json nor a numbered image (NNN.jpg/png)")
        frames.append(name)
    columns: dict[str, Any] = {"__key__": datasets.Value("string"), "__url__": datasets.Value("string"),
                               "json": datasets.Json()}
    for name in sorted(frames, key=_frame_sort):
        columns[name] = datasets.Image()
    return datasets.Features(columns)


def card_header(manifest: dict[str, Any], stats: dict[str, Any], members: list[str]) -> dict[str, Any]:
    """The YAML header of the card as a dict."""
    import datasets

    splits = datasets.SplitDict()
    for split, entry in sorted(manifest["splits"].items()):
        splits.add(datasets.SplitInfo(name=split, num_bytes=entry["bytes"], num_examples=entry["samples"]))
    info = datasets.DatasetInfo(features=features_for(members), splits=splits, config_name="default")
    licenses = sorted({lic for lic in stats.get("licenses", {})})
    return {
        "pretty_name": f"{manifest['dataset']} {manifest['version']}",
        "license": "other" if len(licenses) != 1 else licenses[0].lower(),
        "tags": ["molmo2", "video", "webdataset"],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"{s}-*.tar"} for s in sorted(manifest["splits"])]}],
        "dataset_info": info._to_yaml_dict(),
    }


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(manifest: dict[str, Any], stats: dict[str, Any], members: list[str]) -> str:
    """The whole ``README.md``: YAML header, then the description."""
    header = yaml.safe_dump(card_header(manifest, stats, members), sort_keys=False, allow_unicode=True, width=1000)
    d, v = manifest["dataset"], manifest["version"]
    splits = [(s, e["samples"], e["records"], e["bytes"]) for s, e in manifest["splits"].items()]
    frames = sum(1 for m in members if m != "json")
    licenses = Counter(stats.get("licenses", {}))
    parts = [
        f"---\n{header}---\n",
        f"# {d} {v}\n",
        f"One sample per media item: the clip (or image set) with every {d} record on it. Members: "
        f"`{{key}}.json` (the records; the Clip or ImageSet record with its source, license and split; each "
        f"record's conversation) and the frames `{{key}}.000.jpg` ... in their stored format "
        f"({frames} frame columns declared).\n",
        "## Splits\n", _table(splits, ("split", "samples", "records", "bytes")) + "\n",
        "## Sources and licenses\n",
        _table(sorted(stats.get("sources", {}).items()), ("source", "samples")) + "\n\n"
        + _table(sorted(licenses.items()), ("license", "samples")) + "\n",
        "## How it was made\n",
        f"Published by molmo2-data {manifest['code']['package']} (sources sha256 "
        f"`{manifest['code']['sources_sha256'][:16]}`), parent version {manifest['parent_version'] or 'none'}. "
        f"Records read: {stats['records']['read']}; published {stats['records']['published']}, failed "
        f"{stats['records']['failed']}, excluded {stats['records']['excluded']}. Review decisions applied: "
        + (", ".join(f"{k} {n}" for k, n in stats["review"].items()) or "none")
        + " (rejected records are left out, edited ones replaced; tasks under review are not records yet).\n",
        _table([(x["kind"], x["uri"], x["sha256"][:16]) for x in manifest["inputs"]],
               ("input", "uri", "sha256")) + "\n",
        "\nFailed records (rule or error) and exclusions (reason):\n",
        _table(sorted({**{f"failed: {k}": n for k, n in stats["failed"].items()},
                       **{f"excluded: {k}": n for k, n in stats["excluded"].items()}}.items()) or [("none", 0)],
               ("outcome", "records")) + "\n",
        "\nSettings:\n\n```json\n" + json.dumps(manifest["config"], indent=1, sort_keys=True) + "\n```\n",
        "## Reading it\n",
        "```python\nimport datasets\nds = datasets.load_dataset(\"<this folder>\")  # every split, every frame\n\n"
        f"from shards.dataset import open_dataset  # molmo2-data: equal samples per rank, resume\n"
        f"pipe = open_dataset(root, \"{d}\", \"{v}\", \"train\", rank=0, world_size=1)\n```\n",
        "`molmo2-data verify` checks every shard against `manifest.json`; `report.html` has plots and previews.\n",
    ]
    return "\n".join(parts)
