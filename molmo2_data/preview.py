"""``molmo2-data preview VERSION_DIR KEY``: a PNG of one sample's frames with its points and tracks.

Reads the sample by key through the version's index (``shards.dataset.PublishedSplit``) and draws
it with ``pipelines.publish.preview.render_sample``. Exit codes: 0 written, 2 no such version or key.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main", "find_sample"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``preview`` on the command line's sub-parsers (standard library only)."""
    p = commands.add_parser(
        "preview", help="a PNG of a sample's frames with its points and tracks drawn",
        description="Draw one published sample (found by key in any split) as a PNG.")
    p.add_argument("version", metavar="VERSION_DIR", help="<root>/<dataset>/<X.Y.Z>")
    p.add_argument("key", help="the sample key (a clip or image-set id)")
    p.add_argument("--out", help="PNG to write (default: KEY.png)")
    p.add_argument("--max-frames", type=int, default=8, help="frames drawn at most (default: %(default)s)")
    p.set_defaults(handler=main)
    return p


def find_sample(url: str, key: str) -> dict:
    """The sample ``key`` of the version folder ``url``, from whichever split holds it.

    Raises:
        KeyError: no split holds it. VersionNotFound / ValueError: not a committed version.
    """
    from shards.dataset import PublishedSplit
    from shards.published import parse_version_dir, read_manifest

    root, dataset, version = parse_version_dir(url)
    for split in read_manifest(root, dataset, version)["splits"]:
        data = PublishedSplit(root, dataset, version, split)
        try:
            return data[key]
        except KeyError:
            continue
    raise KeyError(f"no sample {key!r} in {url}")


def main(args: argparse.Namespace, extra: list[str]) -> int:
    """Write the preview; returns the exit code."""
    from pipelines.publish.preview import render_sample
    from shards.published import VersionNotFound

    try:
        sample = find_sample(args.version, args.key)
    except (KeyError, ValueError, VersionNotFound) as exc:
        print(f"molmo2-data preview: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    png, caption = render_sample(sample, max_frames=args.max_frames)
    out = args.out or f"{args.key}.png"
    with open(out, "wb") as f:
        f.write(png)
    print(f"{out}: {caption}")
    return 0
