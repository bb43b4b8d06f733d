"""The run directory's lifecycle (seqlab.rundir): one trainer at a time, everything checked before
anything is created or replaced, an overwritten run kept until the new one has a checkpoint, files
with the user's umask, and a resume that proves what it resumes."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqlab import api, rundir
from seqlab.cli import main

# The [train] keys laid over the tiny config of tests/conftest.py (`tiny_toml`).
TRAIN = dict(eval_every=10, eval_steps=2, checkpoint_every=10, log_every=5, sample_tokens=10, threads=1)


@pytest.fixture
def workspace(tmp_path, monkeypatch, word_corpus, tiny_toml):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    corpus = word_corpus(tmp_path / "corpus.txt", seed=3)
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml(corpus, **TRAIN))
    return tmp_path, config


def run_cli(capsys, *argv):
    code = main(["-q", *map(str, argv)])  # warnings and errors only
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    return lines[0]


def train(capsys, config, run, *extra):
    code, _, err = run_cli(capsys, "train", config, "--out", run, "--no-progress", *extra)
    assert code == 0, err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- the lock -------------------------------------------------------------------------------------


def _seqlab(*argv, env):
    return subprocess.Popen([sys.executable, "-m", "seqlab", *map(str, argv)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_trainers_on_one_out_one_runs_the_other_is_refused(workspace):
    tmp, config = workspace
    run = tmp / "run"
    env = {**os.environ, "SEQLAB_CACHE": str(tmp / "cache")}
    argv = ("train", config, "--out", run, "--no-progress", "--train.max_steps=1000000")
    first = _seqlab(*argv, env=env)
    time.sleep(0.3)  # the two start within 0.5 s
    second = _seqlab(*argv, env=env)
    procs = {first.pid: first, second.pid: second}
    try:
        while all(p.poll() is None for p in procs.values()):  # the refused one ends; the other trains on
            time.sleep(0.1)
        loser = next(p for p in procs.values() if p.poll() is not None)
        winner = next(p for p in procs.values() if p is not loser)
        err = loser.communicate()[1]
        line = error_line(loser.returncode, err)
        assert f"in use by process {winner.pid}" in line
        assert winner.poll() is None  # the holder still trains
        winner.send_signal(signal.SIGKILL)
        winner.wait()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
            p.communicate()
    # The OS dropped the killed holder's lock: the directory can be claimed again.
    with rundir.claim(run):
        pass


def test_overwrite_of_a_live_run_is_refused_and_names_the_holder(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    train(capsys, config, run, "--train.max_steps=2")
    before = snapshot(run)
    with rundir.claim(run):  # as a trainer holds it (a second open file description: refused, even in-process)
        line = error_line(*run_cli(capsys, "train", config, "--out", run, "--overwrite")[::2])
        assert f"in use by process {os.getpid()}" in line
        line = error_line(*run_cli(capsys, "train", "--out", run, "--resume")[::2])
        assert f"in use by process {os.getpid()}" in line
        assert (run / rundir.LOCK_NAME).read_text().strip() == str(os.getpid())
    assert snapshot(run) == before  # and the lock file went with the lock


def test_rank_other_than_zero_claims_nothing(tmp_path):
    with rundir.claim(tmp_path / "run", held=False) as run:
        run.start(fresh=True)
        run.commit()
    assert not (tmp_path / "run").exists()


# ---- everything checked first; a failed start leaves nothing ------------------------------------------


def test_overwrite_with_a_typo_keeps_the_old_run(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    train(capsys, config, run)
    before = snapshot(run)
    for bad in ("--data.corpus=corpsu.txt", "--model.n_head=3", "--train.device=cuda:99"):
        error_line(*run_cli(capsys, "train", config, "--out", run, "--no-progress", "--overwrite", bad)[::2])
        assert snapshot(run) == before, bad  # nothing moved, nothing written, no lock file left


@pytest.mark.parametrize("existing", [False, True])
def test_failed_start_leaves_nothing_behind(workspace, capsys, existing):
    tmp, config = workspace
    run = tmp / "new" / "deeper" / "run"
    if existing:
        run.mkdir(parents=True)
    line = error_line(*run_cli(capsys, "train", config, "--out", run, "--no-progress", "--train.device=cuda:99")[::2])
    assert "cuda:99" in line
    if existing:
        assert run.is_dir() and not any(run.iterdir())  # the folder the user made stays, empty
    else:
        assert not (tmp / "new").exists()  # nor the parents it would have made
    train(capsys, config, run, "--train.max_steps=2")  # the corrected command is not blocked by a stub


def test_out_that_is_not_a_run_is_left_alone(workspace, capsys):
    tmp, config = workspace
    (tmp / "file").write_text("mine")
    line = error_line(*run_cli(capsys, "train", config, "--out", tmp / "file", "--overwrite")[::2])
    assert "is a file" in line and (tmp / "file").read_text() == "mine"
    (tmp / "folder").mkdir()
    (tmp / "folder" / "notes.txt").write_text("mine")
    line = error_line(*run_cli(capsys, "train", config, "--out", tmp / "folder", "--overwrite")[::2])
    assert "other files" in line and snapshot(tmp / "folder") == {"notes.txt": b"mine"}


def test_new_run_that_fails_before_its_checkpoint_puts_the_old_run_back(workspace, capsys, monkeypatch):
    tmp, config = workspace
    run = tmp / "run"
    train(capsys, config, run)
    before = snapshot(run)
    from seqlab.training.trainer import Trainer

    def broken_step(self):
        raise RuntimeError("the device fell over")

    monkeypatch.setattr(Trainer, "_train_step", broken_step)
    with pytest.raises(RuntimeError, match="fell over"):
        api.train(config, out=run, overwrite=True, progress=False)
    assert snapshot(run) == before


def test_overwrite_keeps_the_old_run_until_the_first_checkpoint(workspace, capsys, monkeypatch):
    tmp, config = workspace
    run = tmp / "run"
    train(capsys, config, run, "--model.d_model=32")
    old = (run / "model.safetensors").read_bytes()
    seen = []
    commit = rundir.RunClaim.commit

    def spy(self):
        aside = self.run_dir / rundir.ASIDE_NAME
        seen.append(aside.is_dir() and (aside / "model.safetensors").read_bytes() == old)
        commit(self)

    monkeypatch.setattr(rundir.RunClaim, "commit", spy)
    train(capsys, config, run, "--overwrite")
    assert seen[0] is True  # the old run was whole, aside, until the new run's first checkpoint
    assert not (run / rundir.ASIDE_NAME).exists() and not (run / rundir.DOOMED_NAME).exists()
    assert (run / "model.safetensors").read_bytes() != old and (run / "state" / "latest.json").is_file()


def test_fitted_family_overwrite(workspace, capsys):
    tmp, _ = workspace
    run, config = tmp / "run", tmp / "ngram.toml"
    config.write_text(f'[data]\ncorpus = "{tmp / "corpus.txt"}"\n[model]\nfamily = "ngram"\norder = 2\n')
    train(capsys, config, run)
    before = snapshot(run)
    error_line(*run_cli(capsys, "train", config, "--out", run, "--overwrite", "--data.corpus=nope.txt")[::2])
    assert snapshot(run) == before
    train(capsys, config, run, "--overwrite", "--model.order=3")
    assert "order = 3" in (run / "config.toml").read_text()
    assert not (run / rundir.ASIDE_NAME).exists()


@pytest.mark.parametrize("journal", [rundir.MOVING_NAME, rundir.ASIDE_NAME, rundir.DOOMED_NAME])
def test_a_replacement_killed_halfway_is_put_right_by_the_next_claim(tmp_path, journal):
    run = tmp_path / "run"
    old, new = {"config.toml": "old", "model.safetensors": "old weights"}, {"config.toml": "new"}
    (run / journal).mkdir(parents=True)
    for name, text in old.items():
        (run / journal / name).write_text(text)
    if journal != rundir.MOVING_NAME:  # after the move aside, the new run had begun to write
        for name, text in new.items():
            (run / name).write_text(text)
    with rundir.claim(run):
        pass
    left = {p.name: p.read_text() for p in run.iterdir()}
    assert left == (new if journal == rundir.DOOMED_NAME else old)


# ---- file modes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o027, 0o002])
def test_files_get_the_users_umask(workspace, capsys, umask):
    tmp, config = workspace
    run = tmp / "run"
    previous = os.umask(umask)
    try:
        train(capsys, config, run)
        code, _, err = run_cli(capsys, "export-hf", run, "--out", tmp / "hf")
        assert code == 0, err
    finally:
        os.umask(previous)
    files = [p for folder in (run, tmp / "cache", tmp / "hf") for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".npy" for p in files) and any("ckpt-" in str(p) for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    for path in [run, *(p for p in run.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask, path


# ---- resume proves what it resumes ------------------------------------------------------------------


@pytest.mark.parametrize("lose", ["state", "state/latest.json", "state/ckpt-0000020/optimizer.safetensors"])
def test_resume_without_its_state_is_refused(workspace, capsys, lose):
    tmp, config = workspace
    run = tmp / "run"
    train(capsys, config, run)
    path = run / lose
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    before = snapshot(run)
    line = error_line(*run_cli(capsys, "train", "--out", run, "--resume", "--no-progress",
                               "--train.max_steps=30")[::2])
    missing = "state/latest.json" if lose == "state" else lose
    assert f"{missing} is missing" in line and "--from-weights" in line and "--overwrite" in line
    assert snapshot(run) == before  # weights, metrics and the checkpoint folder untouched


def test_from_weights_continues_the_step_count(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    train(capsys, config, run)
    shutil.rmtree(run / "state")
    metrics = (run / "metrics.csv").read_text().splitlines()
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--from-weights", "--no-progress",
                           "--train.max_steps=30")
    assert code == 0, err
    assert "from its weights at step 20 with a fresh optimizer" in err
    assert (run / "metrics.csv").read_text().splitlines()[:len(metrics)] == metrics  # history kept
    code, out, _ = run_cli(capsys, "info", run, "--json")
    assert '"step": 30' in out and (run / "state" / "latest.json").is_file()


def untrained_run(capsys, config, run):
    """A run killed before its first checkpoint: its config, tokenizer and metrics, nothing trained."""
    train(capsys, config, run, "--train.max_steps=2")
    shutil.rmtree(run / "state")
    (run / "model.safetensors").unlink()


def test_from_weights_needs_resume_and_weights(workspace, capsys):
    tmp, config = workspace
    line = error_line(*run_cli(capsys, "train", config, "--out", tmp / "run", "--from-weights")[::2])
    assert "--resume" in line
    untrained_run(capsys, config, tmp / "half")
    line = error_line(*run_cli(capsys, "train", "--out", tmp / "half", "--resume", "--from-weights")[::2])
    assert "no model.safetensors" in line


def test_resume_of_a_run_with_nothing_trained_starts_it_with_a_warning(workspace, capsys):
    tmp, config = workspace
    run = tmp / "run"
    untrained_run(capsys, config, run)
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress")
    assert code == 0 and "nothing trained yet" in err
    assert (run / "state" / "latest.json").is_file()


# ---- Hugging Face export and import ---------------------------------------------------------------


def test_export_overwrite_replaces_the_whole_export(workspace, capsys):
    tmp, config = workspace
    run, out = tmp / "run", tmp / "hf"
    train(capsys, config, run)
    assert run_cli(capsys, "export-hf", run, "--out", out)[0] == 0
    exported = sorted(p.name for p in out.iterdir())
    assert {"config.json", "model.safetensors", "README.md"} <= set(exported)
    (out / "old-notes.txt").write_text("{}")  # a file of an earlier export that this one does not write
    (out / "config.json").write_text("{}")
    before = snapshot(out)
    error_line(*run_cli(capsys, "export-hf", tmp / "no-run", "--out", out, "--overwrite")[::2])
    assert snapshot(out) == before  # a failed export leaves the old one as it was
    assert run_cli(capsys, "export-hf", run, "--out", out, "--overwrite")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == exported
    assert (out / "config.json").read_text() != "{}"
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # no staging left
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("mine")
    line = error_line(*run_cli(capsys, "export-hf", run, "--out", tmp / "mine", "--overwrite")[::2])
    assert "other files" in line and (tmp / "mine" / "notes.txt").is_file()


def test_import_overwrite_goes_through_the_lifecycle(workspace, capsys):
    tmp, config = workspace
    run, hf, imported = tmp / "run", tmp / "hf", tmp / "imported"
    train(capsys, config, run)
    assert run_cli(capsys, "export-hf", run, "--out", hf)[0] == 0
    tokenizer = run / "tokenizer.json"
    assert run_cli(capsys, "import-hf", hf, "--out", imported, "--tokenizer", tokenizer)[0] == 0
    before = snapshot(imported)
    line = error_line(*run_cli(capsys, "import-hf", hf, "--out", imported, "--tokenizer", tokenizer)[::2])
    assert "already holds a run" in line and "--resume" not in line
    error_line(*run_cli(capsys, "import-hf", tmp / "nowhere", "--out", imported, "--overwrite")[::2])
    assert snapshot(imported) == before  # checked before anything was moved
    with rundir.claim(imported):
        line = error_line(*run_cli(capsys, "import-hf", hf, "--out", imported, "--overwrite",
                                   "--tokenizer", tokenizer)[::2])
        assert f"in use by process {os.getpid()}" in line
    assert run_cli(capsys, "import-hf", hf, "--out", imported, "--overwrite", "--tokenizer", tokenizer)[0] == 0
    assert not (imported / rundir.ASIDE_NAME).exists()
    error_line(*run_cli(capsys, "import-hf", tmp / "nowhere", "--out", tmp / "fresh")[::2])
    assert not (tmp / "fresh").exists()
