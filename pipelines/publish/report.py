"""``report.html``: what a person reads about a published version, one self-contained file.

One job: turn the version's stats, failures and preview images into HTML with plots. Plots are
matplotlib (Agg) PNGs embedded as data URIs, one per distribution in ``stats.json``
(durations, frames per clip, points per frame, counts, track lengths, categories, answer
lengths...) plus failures and exclusions by reason and samples per split; previews are the
samples ``pipelines.publish.preview`` drew with their points and tracks. Rendering is
deterministic (fixed size, DPI, fonts and no timestamps), so the file's sha256 can be pinned in
the manifest.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any

__all__ = ["render_report", "plot_png"]

_STYLE = """body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
h1{font-size:24px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
.plots figure,.previews figure{margin:0}.previews img{max-width:100%;border:1px solid #ccc}
figcaption{font-size:12px;color:#555;max-width:1024px}"""


def plot_png(title: str, labels: list[str], values: list[int], kind: str = "bar") -> bytes:
    """One bar chart (``kind="bar"``) or horizontal bar chart (``"barh"``) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=100)
    try:
        if kind == "barh":
            ax.barh(range(len(values)), values, color="#4878d0")
            ax.set_yticks(range(len(values)), labels, fontsize=7)
            ax.invert_yaxis()
        else:
            ax.bar(range(len(values)), values, color="#4878d0")
            step = max(1, len(labels) // 12)
            ax.set_xticks(range(0, len(labels), step), labels[::step], fontsize=7, rotation=45)
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
        return out.getvalue()
    finally:
        plt.close(fig)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plots(stats: dict[str, Any]) -> list[tuple[str, bytes]]:
    from pipelines.publish.stats import METRIC_TITLES

    plots = []
    for metric, pairs in stats["histograms"].items():
        title = METRIC_TITLES.get(metric, metric)
        labels, values = [_label(v) for v, _ in pairs], [n for _, n in pairs]
        plots.append((title, plot_png(title, labels, values, "barh" if metric == "category" else "bar")))
    outcomes = {**{f"failed: {k}": n for k, n in stats["failed"].items()},
                **{f"excluded: {k}": n for k, n in stats["excluded"].items()}}
    title = "Failures and exclusions by reason (records)"
    plots.append((title, plot_png(title, list(outcomes) or ["none"], list(outcomes.values()) or [0], "barh")))
    splits = stats["splits"]
    plots.append(("Samples per split", plot_png("Samples per split", list(splits),
                                                [s["samples"] for s in splits.values()])))
    return plots


def render_report(manifest: dict[str, Any], stats: dict[str, Any], previews: list[dict[str, Any]],
                  failures: list[dict[str, Any]], max_failures: int = 50) -> str:
    """The report's HTML text.

    Args:
        manifest: the version's manifest (head, splits, shards).
        stats: its ``stats.json``.
        previews: ``[{"key", "png", "caption"}]``.
        failures: failure records (the first ``max_failures`` are listed).
    """
    e = html.escape
    name = f"{manifest['dataset']} {manifest['version']}"
    r = stats["records"]
    rows = "".join(f"<tr><td>{e(s)}</td><td>{v['samples']}</td><td>{v['records']}</td><td>{v['shards']}</td>"
                   f"<td>{v['bytes']}</td></tr>" for s, v in stats["splits"].items())
    plots = "".join(f"<figure>{_img(png, title)}</figure>" for title, png in _plots(stats))
    shown = "".join(f"<figure>{_img(p['png'], p['key'])}<figcaption>{e(p['caption'])}</figcaption></figure>"
                    for p in previews)
    listed = "".join(f"<tr><td>{e(f['input_id'])}</td><td>{e(f['stage'])}</td><td>{e(f['error_type'])}</td>"
                     f"<td>{e(f['message'][:300])}</td></tr>" for f in failures[:max_failures])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(name)}</title><style>{_STYLE}</style></head>
<body>
<h1>{e(name)}</h1>
<p>Records read {r['read']}: published {r['published']}, failed {r['failed']}, excluded {r['excluded']}.
Parent version: {e(str(manifest['parent_version']))}. Inputs: {len(manifest['inputs'])};
shards: {len(manifest['shards'])}.</p>
<table><tr><th>split</th><th>samples</th><th>records</th><th>shards</th><th>bytes</th></tr>{rows}</table>
<h2>Distributions</h2>
<div class="plots" id="plots">{plots}</div>
<h2>Previews</h2>
<div class="previews" id="previews">{shown or '<p>none</p>'}</div>
<h2>Failures ({len(failures)})</h2>
<table><tr><th>record</th><th>stage</th><th>rule or error</th><th>message</th></tr>{listed}</table>
</body></html>
"""
