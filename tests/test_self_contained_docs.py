"""The repository explains itself: no tracked file cites a design document that lives outside it
(the team's old spec files); references point to `docs/benchmarks.md` and `docs/methods.md`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A citation: "<doc> §N", a path to the document, or the folder that held them. Spelled in pieces so
# that this file does not match itself; a bare quoted name (e.g. a test asserting its absence) is no
# citation.
_SPEC, _METHODS = "GLT" + "-SPEC", "METHODS"
OUTSIDE = re.compile(
    "|".join(
        [
            _SPEC + r"(\.md)?\s*§",
            _METHODS + r"(\.md)?\s*§",
            r"(?:^|[`(/\s])" + _SPEC + r"\.md",
            r"(?:^|[`(/\s])" + _METHODS + r"\.md",
            r"shared/" + "docs/",
        ]
    )
)
SECTION = re.compile(r"docs/(benchmarks|methods)\.md §(\d+)")


def _tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        paths = [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # a copy without git: every file but the venv
        paths = [
            p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
        ]
    texts = []
    for path in paths:
        if path.suffix in {".png", ".jpg", ".parquet", ".npy", ".pt", ".gz"} or not path.is_file():
            continue
        texts.append(path)
    return texts


def test_no_tracked_file_cites_a_document_outside_the_repository():
    offenders = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not offenders, "cite docs/benchmarks.md or docs/methods.md instead:\n" + "\n".join(offenders)


def test_every_cited_section_exists():
    anchors = {
        name: set(re.findall(r'<a id="s(\d+)', (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")))
        for name in ("benchmarks", "methods")
    }
    assert {"5", "7", "10"} <= anchors["benchmarks"] and {str(n) for n in range(17)} <= anchors["methods"]
    missing = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for doc, number in SECTION.findall(text):
            if number not in anchors[doc]:
                missing.append(f"{path.relative_to(ROOT)}: docs/{doc}.md §{number}")
    assert not missing, "\n".join(missing)
