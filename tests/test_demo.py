"""`seqlab demo` on a machine with no Tiny Shakespeare and no network: it trains on the running
Python's standard library (`python-stdlib-small`) and says so in one line, instead of stopping."""

from __future__ import annotations

import urllib.error
from pathlib import Path

from seqlab.cli import main
from seqlab.config.load import read_toml_source
from seqlab.data import paths, registry
from seqlab.data.stdlib import stdlib_text

TINY = ["--model.n_layer=1", "--model.n_head=2", "--model.d_model=16", "--model.block_size=16",
        "--train.batch_size=2", "--train.max_steps=2", "--train.eval_steps=1", "--train.compile=false",
        "--train.sample_tokens=0", "--train.threads=1", "--train.device=cpu"]


def test_capped_stdlib_text_is_whole_files_in_order(tmp_path: Path):
    for name in ("a.py", "b.py", "c/d.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n" + "x = 1\n" * 20, encoding="utf-8")
    whole, files = stdlib_text(tmp_path)
    first_two = whole.index("# ---- c/d.py ----")
    capped, kept = stdlib_text(tmp_path, max_chars=first_two + 5)
    assert kept == files[:2] and capped == whole[:first_two]
    assert stdlib_text(tmp_path, max_chars=first_two + 5) == (capped, kept)  # the same every time
    assert stdlib_text(tmp_path, max_chars=10) == ("", ())


def test_demo_offline_without_shakespeare_trains_on_the_standard_library(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("SEQLAB_DATA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "tokens"))
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", empty)
    monkeypatch.chdir(tmp_path)
    attempts = []

    def offline(url, out):
        attempts.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(registry, "_stream", offline)
    code = main(["-q", "demo", "--out", str(tmp_path / "demo"), "--tokens", "5", *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert attempts == [registry.registered("shakespeare").url]  # it tried, once
    said = [line for line in out.splitlines() if "standard-library" in line]
    assert len(said) == 1 and "python-stdlib-small" in said[0] and "Shakespeare" in said[0]
    table, _ = read_toml_source(tmp_path / "demo" / "config.toml")
    assert table["data"]["corpus"] == "python-stdlib-small"
    assert "validation:" in out and "---- sample 2 ----" in out and "--prompt 'def '" in out
