"""Fault injection: a run killed at random moments by SIGTERM, SIGINT and SIGKILL, and resumed after
each, ends with exactly the losses and the weights of the same run trained without a break.

SIGTERM and SIGINT must checkpoint the step they stop at and exit 143 and 130; SIGKILL (-9) gives no
warning, and the run goes on from its last periodic checkpoint, or, when it dies during a checkpoint
write, from the one before. Every resumed run repeats the steps after its checkpoint bit for bit.

Each `seqlab train` is a process forked from a launcher that imported seqlab once (a new interpreter
per run would spend most of this test importing torch and matplotlib); `seqlab.cli.main` runs in it
as in the `seqlab` command, and the signals reach it as they would from a shell, `timeout` or
Kubernetes. One seeded plan of kill points: a failure prints it.
"""

import json
import os
import random
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from seqlab.training import latest_checkpoint

SEED = 20_240_611
MAX_STEPS = 160
KILLS = {"SIGTERM": 11, "SIGKILL": 4, "SIGINT": 3}
EXIT = {"SIGTERM": 143, "SIGINT": 130, "SIGKILL": -9}
SIGNUM = {"SIGTERM": 15, "SIGINT": 2, "SIGKILL": 9}

CONFIG = """
[data]
corpus = "{corpus}"
val_fraction = 0.2

[tokenizer]
kind = "char"

[model]
n_layer = 1
n_head = 2
d_model = 16
block_size = 16
dropout = 0.1

[train]
batch_size = 8
max_steps = {max_steps}
lr = 3e-3
warmup_steps = 5
eval_every = 80
eval_steps = 2
checkpoint_every = 7
log_every = 1
sample_tokens = 0
device = "cpu"
dtype = "float32"
compile = false
threads = 1
seed = 5
"""

# Reads requests as JSON lines: {"argv": [...], "log": PATH} forks a process that runs the CLI with
# its output in PATH and answers its pid; {"wait": PID} answers its exit status (-N: killed by N).
LAUNCHER = r"""
import json, os, sys
import seqlab.api, seqlab.cli, seqlab.plots, torch._dynamo  # what every run imports, paid once
seqlab.plots.pyplot()
for line in iter(sys.stdin.readline, ""):
    request = json.loads(line)
    if "wait" in request:
        reply = os.waitstatus_to_exitcode(os.waitpid(request["wait"], 0)[1])
    else:
        reply = os.fork()
        if reply == 0:
            out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = seqlab.cli.main(request["argv"])
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps(reply), flush=True)
"""


class Launcher:
    def __init__(self, cwd, env):
        self.process = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd=cwd, env=env)

    def _ask(self, request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def start(self, argv, log):
        return self._ask({"argv": argv, "log": str(log)})

    def wait(self, pid):
        return self._ask({"wait": pid})

    def close(self):
        self.process.stdin.close()
        self.process.terminate()  # its runs are all waited for; no need to wait for its interpreter's exit
        self.process.wait(timeout=30)


@pytest.fixture
def launcher(tmp_path, monkeypatch, word_corpus):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG.format(corpus=word_corpus(tmp_path / "corpus.txt", size=20_000), max_steps=MAX_STEPS))
    launcher = Launcher(tmp_path, dict(os.environ))
    yield launcher
    launcher.close()


def logged_rows(run):
    """{(step, split): loss} of metrics.csv; a line being written is left out."""
    rows = {}
    try:
        lines = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()[1:]
    except (FileNotFoundError, UnicodeDecodeError):
        return rows
    for line in lines:
        fields = line.split(",")
        if len(fields) == 9 and fields[0].isdigit():
            rows[int(fields[0]), fields[1]] = fields[2]
    return rows


def last_step(run):
    return max((step for step, split in logged_rows(run) if split == "batch"), default=0)


def weights(run):
    return load_file(str(run / "model.safetensors"))


def kill_plan(rng):
    """Signals in a random order, each at a random step: the steps spread over the run, leaving room
    after the last for the run to be still going when its signal comes."""
    signals = [name for name, count in KILLS.items() for _ in range(count)]
    rng.shuffle(signals)
    steps = sorted(rng.sample(range(2, MAX_STEPS - 40), len(signals)))
    return list(zip(signals, steps))


def run_to(launcher, run, argv, signal_name, step, rng, log):
    """Start `seqlab train`, send `signal_name` once metrics.csv shows `step` (SIGKILL after a random
    further moment, to land anywhere in a step or a checkpoint write); returns the exit status."""
    pid = launcher.start(argv, log)
    deadline = time.monotonic() + 60
    while last_step(run) < step and time.monotonic() < deadline:
        time.sleep(0.005)
    if signal_name == "SIGKILL":
        time.sleep(rng.uniform(0, 0.03))
    os.kill(pid, SIGNUM[signal_name])
    return launcher.wait(pid)


def test_killed_and_resumed_runs_repeat_the_uninterrupted_run_exactly(launcher, tmp_path):
    whole = tmp_path / "whole"
    pid = launcher.start(["--quiet", "train", "tiny.toml", "--out", str(whole), "--no-progress"],
                         tmp_path / "whole.log")
    assert launcher.wait(pid) == 0, (tmp_path / "whole.log").read_text()

    rng = random.Random(SEED)
    plan = kill_plan(rng)
    parts = tmp_path / "parts"
    first = ["--quiet", "train", "tiny.toml", "--out", str(parts), "--no-progress"]
    resume = ["--quiet", "train", "--out", str(parts), "--resume", "--no-progress"]
    outcomes = []
    for number, (signal_name, step) in enumerate(plan):
        step = max(step, last_step(parts) + 1)  # past what the run before logged, which it repeats first
        log = tmp_path / f"part{number}.log"
        status = run_to(launcher, parts, first if number == 0 else resume, signal_name, step, rng, log)
        outcomes.append((signal_name, step, status))
        context = f"seed {SEED}, plan {plan}, outcomes {outcomes}: {log.read_text()}"
        assert status == EXIT[signal_name], context
        if signal_name != "SIGKILL":  # checkpointed at the step it stopped, and says how to go on
            stopped = last_step(parts)
            assert latest_checkpoint(parts).step == stopped >= step, context
            assert f"seqlab train --out {parts} --resume" in log.read_text(), context
    pid = launcher.start(resume, tmp_path / "last.log")
    assert launcher.wait(pid) == 0, (tmp_path / "last.log").read_text()

    assert sum(status == 143 for _, _, status in outcomes) >= 10
    assert logged_rows(parts) == logged_rows(whole), f"seed {SEED}, plan {plan}, outcomes {outcomes}"
    assert len(logged_rows(whole)) == MAX_STEPS + 2 * (MAX_STEPS // 80 + 1)  # a batch row a step, the estimates
    assert not list((parts / "state").glob(".*"))  # no partial checkpoint left
    expected, got = weights(whole), weights(parts)
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key].equal(expected[key]), key
