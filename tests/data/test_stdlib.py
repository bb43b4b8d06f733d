"""The python-stdlib corpus: the walker on a fake tree, and the real standard library."""

from __future__ import annotations

import re
from pathlib import Path

from seqlab.data import load_corpus
from seqlab.data.stdlib import stdlib_files, stdlib_text


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_walker_keeps_sources_and_drops_tests_packages_and_caches(tmp_path: Path):
    _tree(tmp_path, {
        "os.py": b"import sys\n",
        "json/__init__.py": b"# json",
        "json/decoder.py": b"\xef\xbb\xbfx = 1\n",
        "json/README": b"not python\n",
        "test/test_os.py": b"",
        "tests/helper.py": b"",
        "testing_util/x.py": b"",
        "idlelib/idle_test/t.py": b"",
        "idlelib/run.py": b"pass\n",
        "unittest/case.py": b"class TestCase: pass\n",
        "pkg/test_thing.py": b"",
        "site-packages/third.py": b"",
        "dist-packages/third.py": b"",
        "__pycache__/os.py": b"",
        ".hidden/x.py": b"",
        "latin.py": "s = 'caf\xe9'\n".encode("latin-1"),
    })
    assert [p.as_posix() for p in stdlib_files(tmp_path)] == [
        "idlelib/run.py", "json/__init__.py", "json/decoder.py", "latin.py", "os.py",
        "unittest/case.py",
    ]
    text, sources = stdlib_text(tmp_path)
    assert text == (
        "# ---- idlelib/run.py ----\npass\n"
        "# ---- json/__init__.py ----\n# json\n"
        "# ---- json/decoder.py ----\nx = 1\n"
        "# ---- os.py ----\nimport sys\n"
        "# ---- unittest/case.py ----\nclass TestCase: pass\n"
    )
    assert sources[0] == str(tmp_path / "idlelib" / "run.py") and len(sources) == 5
    assert stdlib_text(tmp_path) == (text, sources)


def test_real_stdlib_is_large_deterministic_and_without_tests():
    corpus = load_corpus("python-stdlib")
    assert corpus.name == "python-stdlib"
    assert len(corpus.text) > 1_000_000
    headers = re.findall(r"^# ---- (.+) ----$", corpus.text, flags=re.MULTILINE)
    assert "os.py" in headers and "json/decoder.py" in headers
    for rel in corpus.sources:
        parts = Path(rel).parts
        assert "site-packages" not in parts
        assert not any(p.startswith("test") or p == "idle_test" for p in parts[-4:-1]), rel
    assert load_corpus("python-stdlib").sha256 == corpus.sha256
