"""`--resume` uses only a checkpoint whose every file fits the model and optimizer it is for, and a
damaged or foreign one, a damaged metrics.csv, a full disk or an allocation that fails is one line
on stderr (exit 2) through `seqlab.cli.main`, never a traceback, a segfault or a run on the wrong
state; and nothing is lost: the checkpoint before is still there, whole, and loads."""

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqlab.cli import main
from seqlab.training import Trainer, latest_checkpoint
from seqlab.training import checkpoint as checkpoint_module

# The [train] keys laid over the tiny config of tests/conftest.py (`tiny_toml`).
TRAIN = dict(eval_every=10, eval_steps=2, checkpoint_every=10, log_every=1, sample_tokens=0,
             dtype="float32", compile=False, threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, word_corpus, tiny_toml):
    """A run trained to step 20 (checkpoints at 10 and 20), and the folder it lives in."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQLAB_CACHE", str(root / "cache"))
        config = root / "tiny.toml"
        config.write_text(tiny_toml(word_corpus(root / "corpus.txt"), **TRAIN))
        assert main(["-q", "train", str(config), "--out", str(root / "run"), "--no-progress"]) == 0
    return root


@pytest.fixture
def run(trained, tmp_path, monkeypatch, capsys):
    """A copy of the trained run to damage."""
    monkeypatch.setenv("SEQLAB_CACHE", str(trained / "cache"))
    copy = tmp_path / "run"
    shutil.copytree(trained / "run", copy)
    capsys.readouterr()
    return copy


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    return lines[0]


def resume(capsys, run, *more):
    return cli(capsys, "-q", "train", "--out", str(run), "--resume", "--no-progress", "--train.max_steps=30", *more)


def snapshot(run):
    """The bytes of every file a failed resume must leave as it was."""
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and (p.parent.name.startswith("ckpt-") or p.name in ("latest.json", "metrics.csv",
                                                                                  "model.safetensors"))}


def refused(capsys, run, *match):
    """Resuming `run` is one error line holding every `match`, and changes nothing."""
    before = snapshot(run)
    line = error_line(*resume(capsys, run)[::2])
    for text in match:
        assert text in line, line
    assert snapshot(run) == before
    return line


def checkpoint_folder(run):
    return latest_checkpoint(run).folder


def rewrite_tensors(path, change):
    tensors = load_file(str(path))
    save_file(change(tensors), str(path))


def resized(tensors, factor):
    """Every moment a tensor of another model's shapes: each side times `factor` (a model of another width)."""
    def other(key, value):
        if key.endswith(".step"):
            return value
        shape = [max(1, int(n * factor)) for n in value.shape]
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(value.dtype)
    return {key: other(key, value) for key, value in tensors.items()}


# ---- optimizer.safetensors -------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.5, 2.0], ids=["smaller", "larger"])
def test_optimizer_state_of_other_shapes_is_refused_before_loading(run, capsys, factor):
    # Before the check: the fused AdamW kernel crashed on the smaller (exit 139) and trained on the
    # larger silently.
    rewrite_tensors(checkpoint_folder(run) / "optimizer.safetensors", lambda t: resized(t, factor))
    line = refused(capsys, run, "optimizer.safetensors does not fit this model", "exp_avg", "--overwrite")
    assert "for " in line  # names the parameter the moment is for


@pytest.mark.parametrize("change", [
    lambda t: {k: v.double() for k, v in t.items()},                                 # another dtype
    lambda t: {k: v for k, v in t.items() if not k.endswith("exp_avg_sq")},          # moments missing
    lambda t: {**t, "state.999.exp_avg": torch.zeros(3)},                            # a parameter it lacks
    lambda t: {k: (torch.zeros(2) if k.endswith(".step") else v) for k, v in t.items()},  # a step of 2 values
], ids=["float64", "missing-moment", "unknown-parameter", "step-not-scalar"])
def test_optimizer_state_that_does_not_fit_is_refused(run, capsys, change):
    rewrite_tensors(checkpoint_folder(run) / "optimizer.safetensors", change)
    refused(capsys, run, "optimizer.safetensors", "does not fit")


def test_optimizer_groups_that_do_not_fit_are_refused(run, capsys):
    path = checkpoint_folder(run) / "trainer.json"
    content = json.loads(path.read_text())
    content["param_groups"][0]["params"] = content["param_groups"][0]["params"][:-1]
    path.write_text(json.dumps(content))
    refused(capsys, run, "trainer.json does not fit this model", "parameter group 0")
    content["param_groups"] = content["param_groups"][:1]
    path.write_text(json.dumps(content))
    refused(capsys, run, "1 parameter groups, the optimizer has 2")


# ---- trainer.json -------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, says", [
    (lambda c: c.pop("step"), "it has no 'step'"),
    (lambda c: c.update(step="20"), "'step' is '20', not a whole number"),
    (lambda c: c.update(step=-3), "'step' is -3"),
    (lambda c: c.update(step=True), "'step' is True"),
    (lambda c: c.update(step=12), "says step 12"),
    (lambda c: c.update(tokens_seen="many"), "'tokens_seen' is 'many'"),
    (lambda c: c.update(train_seconds=None), "'train_seconds' is None"),
    (lambda c: c.update(param_groups={"lr": 1}), "'param_groups' is"),
    (lambda c: c["param_groups"][0].update(lr="fast"), "lr = 'fast'"),
    (lambda c: c["param_groups"][1].update(betas=[0.9]), "betas = [0.9]"),
], ids=["no-step", "step-string", "step-negative", "step-bool", "step-other", "tokens-string", "seconds-null",
        "groups-object", "lr-string", "betas-short"])
def test_trainer_json_with_a_wrong_field_is_refused(run, capsys, change, says):
    path = checkpoint_folder(run) / "trainer.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    refused(capsys, run, "trainer.json", says)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"step"', "\xff\xfe"],
                         ids=["syntax", "list", "string", "bytes"])
def test_trainer_json_that_is_not_an_object_is_refused(run, capsys, text):
    (checkpoint_folder(run) / "trainer.json").write_bytes(text.encode("latin-1"))
    refused(capsys, run, "trainer.json is damaged")


@pytest.mark.parametrize("pointer", ['{"checkpoint": "../../elsewhere", "step": 20}', '{"checkpoint": 20}', "[]"])
def test_a_latest_json_that_names_no_checkpoint_is_refused(run, capsys, pointer):
    (run / "state" / "latest.json").write_text(pointer)
    refused(capsys, run, "latest.json")


# ---- rng.safetensors and the weights --------------------------------------------------------------


@pytest.mark.parametrize("change, says", [
    (lambda t: {**t, "numpy": torch.zeros(4, dtype=torch.uint8)}, "holds ['batches', 'numpy', 'torch']"),
    (lambda t: {"torch": t["torch"]}, "holds ['torch']"),
    (lambda t: {**t, "batches": t["batches"][:100]}, "'batches' is torch.uint8 [100]"),
    (lambda t: {**t, "torch": t["torch"].float()}, "'torch' is torch.float32"),
    (lambda t: {**t, "batches": torch.zeros_like(t["batches"])}, "'batches' is no generator's state"),
], ids=["extra-key", "missing-key", "short", "float", "not-a-state"])
def test_random_states_of_other_keys_or_sizes_are_refused(run, capsys, change, says):
    rewrite_tensors(checkpoint_folder(run) / "rng.safetensors", change)
    refused(capsys, run, "rng.safetensors is damaged", says)


@pytest.mark.parametrize("change, says", [
    (lambda t: {k: v.half() for k, v in t.items()}, "is F16"),
    (lambda t: {k: (v[:-1] if v.dim() else v) for k, v in t.items()}, "does not fit this model"),
    (lambda t: dict(list(t.items())[1:]), "missing"),
], ids=["float16", "shapes", "missing"])
def test_checkpoint_weights_that_do_not_fit_are_refused(run, capsys, change, says):
    rewrite_tensors(checkpoint_folder(run) / "model.safetensors", change)
    refused(capsys, run, "model.safetensors", says)


@pytest.mark.parametrize("name", ["optimizer.safetensors", "rng.safetensors", "trainer.json"])
def test_a_checkpoint_missing_a_file_says_which(run, capsys, name):
    (checkpoint_folder(run) / name).unlink()
    refused(capsys, run, name)


# ---- metrics.csv ------------------------------------------------------------------------------------


DAMAGE = {
    "step": lambda lines: lines[:5] + ["x7,batch,1.0,2.7,1.4,,100.0,0.001,0.1"] + lines[5:],
    "loss": lambda lines: lines[:5] + ["7,batch,lots,2.7,1.4,,100.0,0.001,0.1"] + lines[5:],
    "fields": lambda lines: lines[:5] + ["7,batch"] + lines[5:],
    "header": lambda lines: ["what,is,this"] + lines[1:],
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_metrics_are_one_line_in_info_and_resume(run, capsys, kind):
    path = run / "metrics.csv"
    path.write_text("\n".join(DAMAGE[kind](path.read_text().splitlines())) + "\n")
    line = error_line(*cli(capsys, "info", str(run))[::2])
    assert "metrics.csv is damaged at line" in line and "fix or delete that line" in line
    refused(capsys, run, "metrics.csv is damaged at line")


def test_binary_metrics_are_one_line_in_info(run, capsys):
    path = run / "metrics.csv"
    header = path.read_bytes().splitlines(keepends=True)[0]
    path.write_bytes(header + b"\x00\xff\xfe garbage\n" + b"more\n")
    assert "metrics.csv is damaged at line 2" in error_line(*cli(capsys, "info", str(run))[::2])


def test_a_last_metrics_line_cut_short_is_dropped_on_resume(run, capsys):
    path = run / "metrics.csv"
    path.write_bytes(path.read_bytes() + b"21,batch,1.83")  # a write a full disk cut short
    code, _, err = resume(capsys, run)
    assert code == 0, err
    assert "dropped its line" in err and "a write cut short" in err
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert [int(r[0]) for r in rows if r[1] == "batch"] == list(range(1, 31))


# ---- a full disk, memory ----------------------------------------------------------------------------


def no_space_at(name, monkeypatch, *, safetensors_style=False):
    """Make the write of the checkpoint file `name` fail as a full disk does (also when it is
    written under a temporary name beside it)."""
    def check(path):
        if name in Path(path).name:
            if safetensors_style:  # what safetensors raises when the disk fills
                raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    save_file, atomic_write_text = checkpoint_module.save_file, checkpoint_module.atomic_write_text
    monkeypatch.setattr(checkpoint_module, "save_file",
                        lambda tensors, path, *a, **k: check(path) or save_file(tensors, path, *a, **k))
    monkeypatch.setattr(checkpoint_module, "atomic_write_text",
                        lambda path, text: check(path) or atomic_write_text(path, text))


@pytest.mark.parametrize("name, safetensors_style", [
    ("optimizer.safetensors", True), ("rng.safetensors", False), ("trainer.json", False), ("latest.json", False),
])
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(run, capsys, monkeypatch, trained, name,
                                                                safetensors_style):
    no_space_at(name, monkeypatch, safetensors_style=safetensors_style)
    line = error_line(*resume(capsys, run)[::2])
    assert "could not write the checkpoint of step 30" in line and "no space left on device" in line
    assert "the checkpoint of step 20 is intact and still the current one" in line and "--resume" in line
    assert latest_checkpoint(run).step == 20
    assert sorted(p.name for p in (run / "state").iterdir()) == ["ckpt-0000020", "latest.json"]  # no .partial
    monkeypatch.undo()

    # With room again, the run goes on from step 20 as if nothing had happened.
    monkeypatch.setenv("SEQLAB_CACHE", str(trained / "cache"))
    assert resume(capsys, run)[0] == 0
    whole = run.parent / "whole"
    shutil.copytree(trained / "run", whole)
    assert resume(capsys, whole)[0] == 0
    assert losses(run) == losses(whole)


def losses(run):
    return [line.split(",")[:3] for line in (run / "metrics.csv").read_text().splitlines()]


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 140737488355328 bytes. Error code 12 (Cannot allocate memory)"),
    MemoryError(),
], ids=["torch", "cpu-allocator", "python"])
def test_running_out_of_memory_while_training_is_one_line(run, capsys, monkeypatch, error):
    def out_of_memory(self):
        raise error
    monkeypatch.setattr(Trainer, "_train_step", out_of_memory)
    line = error_line(*resume(capsys, run)[::2])
    assert line.startswith("seqlab: error: out of memory") and "train.batch_size" in line
    assert latest_checkpoint(run).step == 20


def test_other_runtime_errors_still_show_their_traceback(run, capsys, monkeypatch):
    def bug(self):
        raise RuntimeError("a bug")
    monkeypatch.setattr(Trainer, "_train_step", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["-q", "train", "--out", str(run), "--resume", "--no-progress", "--train.max_steps=30"])


def test_a_diverging_run_stops_in_one_line_without_saving_the_diverged_weights(tmp_path, capsys, monkeypatch):
    """A finite learning rate large enough to overflow the weights: the first non-finite loss read
    stops the run with one line, and no checkpoint or metrics row holds the diverged state."""
    from seqlab.cli import main

    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("to be or not to be that is the question\n" * 200, encoding="utf-8")
    args = ["train", "shakespeare-char", f"--data.corpus={corpus}", "--model.n_layer=1", "--model.d_model=16",
            "--model.n_head=2", "--model.block_size=16", "--train.max_steps=40", "--train.lr=1e30",
            "--train.min_lr=0", "--train.warmup_steps=0", "--train.grad_clip=0", "--train.log_every=1",
            "--train.eval_every=0", "--train.checkpoint_every=0", "--train.sample_tokens=0",
            "--train.compile=false", "--train.dtype=float32", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("seqlab: error:")]
    assert len(errors) == 1 and "diverged" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()  # a failed fresh start leaves nothing
