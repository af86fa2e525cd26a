"""The page of `--output http://...` in a real headless browser (Debian's Chromium).

Marked ``browser``; skipped with the reason when no Chromium is installed (`apt-get install chromium`).
"""

import re
import shutil
import subprocess

import numpy as np
import pytest

from test_http_output import LoopThread, free_port

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def headless(*args, timeout=60):
    if CHROMIUM is None:
        pytest.skip("no Chromium here (apt-get install chromium) for the headless browser test")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=4000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_page_shows_label_checklist_rate_and_the_stream(tiny_onnx, tmp_path):
    port = free_port()
    loop = LoopThread(tiny_onnx, [f"http://127.0.0.1:{port}/"], shape=(240, 320, 3))
    try:
        loop.wait_frames(5)
        dom = headless("--dump-dom", f"http://127.0.0.1:{port}/").stdout
        shot = tmp_path / "page.png"
        headless("--window-size=900,500", f"--screenshot={shot}", f"http://127.0.0.1:{port}/")
    finally:
        loop.finish()
    # the script filled the page from /status.json
    assert re.search(r'<div id="label"[^>]*>[^<]*\d+ %', dom), dom[:2000]
    assert re.search(r'<div id="rate">[\d.]+ Hz', dom)
    assert len(re.findall(r'<li class="(seen|missing)">', dom)) == 5
    assert re.search(r'<b id="exam">exam-\d{8}-\d{6}</b>', dom)
    assert 'src="stream.mjpg"' in dom
    # and the browser drew the stream's frames: the image area is not the page's flat background
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None, "no screenshot"
    area = img[60:280, 20:330]  # where the 320x240 stream sits
    assert float(area.std()) > 20  # random frames + overlay, not a flat box
