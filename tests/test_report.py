"""report.html renders in a real browser: headless Chromium screenshots show the plots and previews.

The plots are bar charts in one known colour (``#4878d0``) and the previews draw points in the
preview palette's first colour; the screenshot must hold many pixels of both. A copy of the report
whose embedded images are broken must not (the check can fail). ``make test`` installs Debian's
``chromium`` when it is missing.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.publish.config import PublishConfig
from pipelines.publish.preview import PALETTE
from pipelines.publish.version import publish
from tests.publish_inputs import ClipSpec, make_ingest, video_point, video_track, write_records

BAR = (0x48, 0x78, 0xD0)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")


def _screenshot(html: Path, out: Path) -> np.ndarray:
    subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,4000", f"--screenshot={out}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def _pixels(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(image - np.array(colour)).max(axis=2) <= tolerance).sum())


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    clips = [ClipSpec(f"r{i}", f"v{i}", duration=1.0 + i) for i in range(4)]
    ingest = make_ingest(base / "ingest", clips)
    records = write_records(base / "records", {
        "VideoPoint": [video_point(f"p{c.key}", c, [0.0, 0.5, 1.0]) for c in clips],
        "VideoTrack": [video_track(f"t{c.key}", c) for c in clips]})
    publish(str(base / "root"), [str(ingest)], [str(records)], PublishConfig(version="1.0.0"))
    return base / "root" / "VideoPoint" / "1.0.0" / "report.html"


def test_report_plots_and_previews_render_in_chromium(report, tmp_path):
    html = report.read_text()
    assert html.count('src="data:image/png;base64,') >= 8  # plots and previews embedded
    shot = _screenshot(report, tmp_path / "report.png")
    bars, dots = _pixels(shot, BAR), _pixels(shot, PALETTE[0], tolerance=20)
    assert bars > 20_000, f"only {bars} pixels of plot bars in the screenshot"
    assert dots > 100, f"only {dots} pixels of preview points in the screenshot"
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"base64,[A-Za-z0-9+/=]{40}", "base64,AAAA", html))
    shot = _screenshot(broken, tmp_path / "broken.png")
    assert _pixels(shot, BAR) < 200  # the check sees when images do not render


def test_report_names_the_plots_a_person_needs(report):
    html = report.read_text()
    for alt in ("Clip duration (s)", "Frames per clip", "Points per frame (frames with points)",
                "Counts (points per query)", "Failures and exclusions by reason (records)", "Samples per split"):
        assert f'alt="{alt}"' in html
    track_report = (report.parents[2] / "VideoTrack" / "1.0.0" / "report.html").read_text()
    assert 'alt="Track length (frames visible per object)"' in track_report
