"""Tiny runs of every family, shared by the API and browser tests of `seqlab serve`.

The counted families (n-gram, HMM) are fitted by `seqlab.train`; the others are run directories of
a freshly initialised, seeded model (config, tokenizer and weights as training writes them), which
`seqlab.load` and `seqlab sample` read like any run, without the seconds a Trainer takes to start.
"""

import json
import logging

import pytest
import torch

from seqlab import api, families, seq2seq
from seqlab.config import load_config
from seqlab.data import load_corpus
from seqlab.runs import write_run_files
from seqlab.tokenizers import source_vocab_size
from seqlab.training.checkpoint import save_weights
from tests.test_families import TINY as FAMILY_TINY

# Tiny settings per family: tests/test_families.py's, with two Transformer layers so that the model
# view has more than one row; a family not listed runs with its settings' defaults, so every family
# of the registry is served in the tests.
TINY = {**FAMILY_TINY, "transformer": {**FAMILY_TINY["transformer"], "n_layer": 2}}


# The runs' char vocabularies have byte fallback (a new config's default), so that they can encode
# any text and may generate part of a character; the LSTM's has not, for the requests it must refuse.
WITHOUT_BYTE_FALLBACK = "lstm"

# Every family whose runs `seqlab serve` shows: the language models and the seq2seq models.
SERVED = [name for name, entry in families.FAMILIES.items() if getattr(entry, "language_model", True)]


def _toml(value) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _config(path, family: str, corpus) -> str:
    pairs = families.get(family).reads_pairs
    data = 'task = "reverse"\ntask_examples = 40\ntask_max_len = 6\n' if pairs else f'corpus = "{corpus}"\n'
    model = "".join(f"{key} = {_toml(value)}\n" for key, value in TINY.get(family, {}).items())
    tokenizer = "[tokenizer]\nbyte_fallback = false\n\n" if family == WITHOUT_BYTE_FALLBACK else ""
    path.write_text(f'[data]\n{data}\n{tokenizer}[model]\nfamily = "{family}"\n{model}\n'
                    "[train]\nmax_steps = 2\nbatch_size = 4\neval_every = 0\ncheckpoint_every = 0\n"
                    "sample_tokens = 0\ndevice = \"cpu\"\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, word_corpus):
    """family -> the directory of a tiny run of it, trained once for the whole test session."""
    root = tmp_path_factory.mktemp("serve-runs")
    corpus = word_corpus(root / "words.txt", size=3000)
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQLAB_CACHE", str(root / "cache"))
    try:
        return {family: _run(_config(root / f"{family}.toml", family, corpus), root / family) for family in SERVED}
    finally:
        mp.undo()


def _run(config_path: str, out):
    config = load_config(config_path)
    family = families.get(config.model.family)
    if not family.trained:
        return api.train(config, out=out, progress=False)
    if family.reads_pairs:
        train, val = seq2seq.task_pairs(config)
        tokenizer = seq2seq.fit_tokenizer(config, train + val)
    else:
        tokenizer = api.fit_tokenizer(config, load_corpus(config.data.corpus))
    torch.manual_seed(0)
    model = families.build_model(config.model, tokenizer.vocab_size, source_vocab_size=source_vocab_size(tokenizer))
    write_run_files(out, config, tokenizer)
    save_weights(model, out / "model.safetensors")
    return out


@pytest.fixture(autouse=True)
def seqlab_logging():
    """The `seqlab` logger as it was before the test: `seqlab.cli.main` points it at the stderr of
    the moment (a test's captured one, closed after the test)."""
    logger = logging.getLogger("seqlab")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
