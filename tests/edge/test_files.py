"""edge.files: the one list of image/video suffixes and the one file sha256 (no copies elsewhere)."""

import hashlib
import re
from pathlib import Path

from edge.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image_file, sha256_file, strip_image_suffix

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("edge", "fetaldata", "calibration", "export")


def test_suffixes():
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    assert not set(IMAGE_SUFFIXES) & set(VIDEO_SUFFIXES)
    assert is_image_file("a/B.PNG") and is_image_file("x.jpeg") and not is_image_file("clip.mp4")
    assert strip_image_suffix("Patient00001_Plane1_1_of_15.png") == "Patient00001_Plane1_1_of_15"
    assert strip_image_suffix("img.PNG") == "img" and strip_image_suffix("img.JPG") == "img"
    assert strip_image_suffix("img") == "img" and strip_image_suffix("v1.2_scan") == "v1.2_scan"


def test_sha256_file_reads_in_chunks(tmp_path):
    data = bytes(range(256)) * 1000
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected and sha256_file(path, chunk=7) == expected
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def _sources():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")


def test_one_declaration_each():
    suffix_lists = [rel for rel, text in _sources() if re.search(r"^\w*(IMAGE|VIDEO)_\w*SUFFIXES\s*=", text, re.M)]
    assert suffix_lists == ["edge/files.py"], suffix_lists
    file_hashers = [rel for rel, text in _sources() if re.search(r"open\([^)]*\"rb\"\)", text) and "hashlib.sha256()" in text]
    assert file_hashers == ["edge/files.py"], file_hashers
    versions = [rel for rel, text in _sources() if re.search(r"^def _?code_version\(", text, re.M)]
    assert versions == ["export/checkpoint.py"], versions
