"""Numbers a user can type that must never cost a run or print a traceback: non-finite floats in a
config, temperatures and top-p values past float32's range, seeds of any size or sign, n-gram orders
whose keys overflow int64, BPE vocabularies too large to reserve, a corpus without a newline and a
file given as a run directory. CLI cases go through `seqlab.cli.main` (one line on stderr, exit 2);
library cases through the function."""

import math

import numpy as np
import pytest
import torch

from seqlab.api import prompt_ids
from seqlab.cli import main
from seqlab.config import SampleConfig, TrainConfig, load_config
from seqlab.config.schema import BPE_MAX_VOCAB_SIZE, DataConfig, ModelConfig
from seqlab.errors import ConfigError, TokenizerError
from seqlab.families.classical import NGramConfig
from seqlab.generate.sampling import GREEDY_BELOW, filter_logits, iter_generate, sample_next
from seqlab.models.hmm import HMM
from seqlab.models.ngram import NGramLM, max_order
from seqlab.seeds import generator_seed, numpy_generator, torch_generator
from seqlab.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer
from seqlab.tokenizers.bpe import MAX_VOCAB_SIZE

TINY = """
[data]
corpus = "{corpus}"
val_fraction = 0.2

[tokenizer]
kind = "char"

[model]
{model}

[train]
batch_size = 4
max_steps = 2
warmup_steps = 1
eval_every = 2
eval_steps = 1
checkpoint_every = 2
log_every = 1
sample_tokens = 8
device = "cpu"
compile = false

[sample]
max_new_tokens = 40
"""


MODELS = {
    "transformer": "n_layer = 1\nn_head = 2\nd_model = 16\nblock_size = 16",
    "ngram": 'family = "ngram"\norder = 3',
    "hmm": 'family = "hmm"\nn_states = 3\nem_iterations = 2',
}


def write_config(tmp_path, family="transformer", corpus=None):
    config = tmp_path / f"tiny-{family}.toml"
    text = TINY.format(corpus=corpus or tmp_path / "corpus.txt", model=MODELS[family])
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture
def workspace(tmp_path, monkeypatch, word_corpus):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    word_corpus(tmp_path / "corpus.txt")
    return tmp_path, write_config(tmp_path)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, out, err):
    """The one line of a user's mistake: exit 2, `seqlab: error: ...`, no traceback."""
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def ngram_run(workspace, capsys):
    """A character trigram run: fitted by counting in a fraction of a second."""
    tmp, _ = workspace
    run = tmp / "ngram"
    code, _, err = run_cli(capsys, "train", write_config(tmp, "ngram"), "--out", run, "--no-progress")
    assert code == 0, err
    return run


# --- non-finite floats in a config -------------------------------------------------------------------

FLOAT_KEYS = ["train.lr", "train.min_lr", "train.weight_decay", "train.beta1", "train.beta2", "train.grad_clip",
              "data.val_fraction", "model.norm_eps", "model.rope_base", "model.dropout", "sample.temperature",
              "sample.top_p"]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_a_non_finite_float_in_a_config_is_one_line(workspace, capsys, key, value):
    tmp, config = workspace
    line = error_line(*run_cli(capsys, "train", config, "--out", tmp / "run", "--no-progress", f"--{key}={value}"))
    assert f"{key} = {value}" in line and "finite" in line, line
    assert not (tmp / "run" / "model.safetensors").exists()


def test_inf_in_a_toml_file_and_in_the_ngram_settings(workspace, capsys):
    tmp, config = workspace
    config.write_text(config.read_text().replace("[train]\n", "[train]\nlr = inf\nweight_decay = inf\n"))
    assert "train.lr = inf" in error_line(*run_cli(capsys, "train", config, "--out", tmp / "run"))
    config.write_text(config.read_text().replace("lr = inf\n", ""))
    assert "train.weight_decay = inf" in error_line(*run_cli(capsys, "train", config, "--out", tmp / "run"))
    line = error_line(*run_cli(capsys, "train", write_config(tmp, "ngram"), "--out", tmp / "run",
                               "--model.add_k=inf"))
    assert "model.add_k = inf" in line


def test_an_integer_past_floats_range_is_one_line(workspace, capsys):
    tmp, config = workspace
    assert "train.lr" in error_line(*run_cli(capsys, "train", config, "--out", tmp / "run", f"--train.lr={10**400}"))


@pytest.mark.parametrize(("make", "key"), [
    (lambda v: TrainConfig(lr=v), "train.lr"),
    (lambda v: TrainConfig(weight_decay=v), "train.weight_decay"),
    (lambda v: TrainConfig(grad_clip=v), "train.grad_clip"),
    (lambda v: ModelConfig(rope_base=v), "model.rope_base"),
    (lambda v: ModelConfig(norm_eps=v), "model.norm_eps"),
    (lambda v: DataConfig(val_fraction=v), "data.val_fraction"),
    (lambda v: SampleConfig(temperature=v), "sample.temperature"),
    (lambda v: SampleConfig(top_p=v), "sample.top_p"),
    (lambda v: NGramConfig(add_k=v), "model.add_k"),
])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_float_is_refused_by_the_settings_themselves(make, key, value):
    with pytest.raises(ConfigError, match=key):
        make(value)


def test_finite_floats_still_load():
    config = load_config(None, ["train.lr=2", "train.weight_decay=0", "sample.temperature=1e-45",
                                "sample.top_p=1e-300"])
    assert config.train.lr == 2.0 and isinstance(config.train.lr, float) and config.sample.top_p == 1e-300


# --- temperature and top-p past float32's range --------------------------------------------------------

def random_logits(seed, rows=64, vocab=17):
    """Seeded logits with ties, huge values, and ±inf entries (some rows all -inf, some with +inf)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=generator) * 3
    logits[: rows // 4] = logits[: rows // 4].round()  # many ties, at the top too
    logits[rows // 4: rows // 3] *= 1e37  # logits / T overflows for any T < 1
    mask = torch.rand(rows, vocab, generator=generator)
    logits[mask < 0.2] = float("-inf")
    logits[rows - 4:] = float("-inf")  # no finite logit at all
    logits[rows - 8: rows - 4, ::5] = float("inf")  # certain tokens, tied
    return logits


def test_a_temperature_that_overflows_keeps_exactly_the_argmax():
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(0))
    for temperature in (1e-45, 1e-40, GREEDY_BELOW / 2):
        filtered = filter_logits(logits, temperature=temperature)
        assert torch.equal(torch.isfinite(filtered), torch.nn.functional.one_hot(logits.argmax(-1), 50).bool())
    for temperature in (1e-45, 1e-30, 1e-20):  # below and above GREEDY_BELOW: no NaN, the argmax drawn
        probs = torch.softmax(filter_logits(logits, temperature=temperature), dim=-1)
        assert not probs.isnan().any()
        torch.testing.assert_close(probs, torch.nn.functional.one_hot(logits.argmax(-1), 50).float())
        generator = torch.Generator().manual_seed(1)
        assert torch.equal(sample_next(logits, temperature=temperature, generator=generator), logits.argmax(-1))


def test_top_p_below_float32s_range_keeps_the_top_token():
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(0))
    for top_p in (1e-300, 1e-46, 1e-10):
        filtered = filter_logits(logits, top_p=top_p)
        assert torch.equal(torch.isfinite(filtered), torch.nn.functional.one_hot(logits.argmax(-1), 50).bool())


@pytest.mark.parametrize("seed", range(4))
def test_the_greedy_token_survives_every_filter(seed):
    """Property-style: seeded random logits with ties and ±inf, every combination of filters."""
    logits = random_logits(seed)
    greedy = logits.argmax(dim=-1)  # the first maximum
    rows = torch.arange(len(logits))
    generator = torch.Generator().manual_seed(seed)
    for temperature in (1e-45, 1e-30, 0.7, 1.0, 3.0):
        for top_k in (None, 1, 2, 5, 40):
            for top_p in (None, 1e-300, 0.1, 0.9):
                filtered = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
                case = f"seed {seed}, temperature {temperature}, top_k {top_k}, top_p {top_p}"
                assert not filtered.isnan().any(), case
                assert torch.isfinite(filtered[rows, greedy]).all(), case
                if top_k:
                    assert (torch.isfinite(filtered).sum(-1) <= top_k).all(), case
                probs = torch.softmax(filtered, dim=-1)
                torch.testing.assert_close(probs.sum(-1), torch.ones(len(logits)), msg=case)
                token = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
                assert torch.isfinite(filtered[rows, token]).all(), case
                assert ((logits[rows, token] > -math.inf) | (logits.max(-1).values == -math.inf)).all(), case


def test_infinite_logits_are_ties():
    logits = torch.tensor([[0.0, math.inf, 1.0, math.inf], [-math.inf] * 4])
    filtered = filter_logits(logits, temperature=0.5)
    assert torch.isfinite(filtered).tolist() == [[False, True, False, True], [True] * 4]
    tokens = sample_next(logits[:1].expand(1000, 4), temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) == {1, 3}  # the +inf tokens share the mass
    assert filter_logits(logits, temperature=0).isfinite().tolist() == [[False, True, False, False],
                                                                         [True, False, False, False]]


@pytest.mark.parametrize("bad", [{"temperature": math.inf}, {"temperature": math.nan}, {"temperature": -1.0},
                                 {"top_p": math.nan}, {"top_p": math.inf}, {"top_p": 0.0}, {"top_k": -1}])
def test_non_finite_sampling_arguments_are_value_errors(bad):
    logits = torch.zeros(1, 3)
    for call in (lambda: filter_logits(logits, **bad), lambda: sample_next(logits, **bad),
                 lambda: iter_generate(None, torch.zeros(1, 1, dtype=torch.long), 1, **bad)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            call()


@pytest.mark.parametrize("options", [("--temperature", "1e-45"), ("--temperature", "1", "--top-p", "1e-300"),
                                     ("--temperature", "1e-30", "--top-k", "1")])
def test_sampling_past_float32s_range_is_greedy_through_the_cli(ngram_run, capsys, options):
    greedy = run_cli(capsys, "sample", ngram_run, "--prompt", "to ", "--temperature", "0")
    code, out, err = run_cli(capsys, "sample", ngram_run, "--prompt", "to ", *options)
    assert code == 0, err
    assert out == greedy[1] and out.strip() != "to"


@pytest.mark.parametrize(("option", "value"), [("--temperature", "inf"), ("--temperature", "nan"),
                                               ("--temperature", "-inf"), ("--top-p", "nan"), ("--top-p", "inf"),
                                               ("--top-p", "0")])
def test_non_finite_temperature_and_top_p_are_one_line(ngram_run, capsys, option, value):
    line = error_line(*run_cli(capsys, "sample", ngram_run, f"{option}={value}"))  # = : "-inf" is not an option
    assert "sample.t" in line
    # translate checks them before it reads the run
    assert "sample.t" in error_line(*run_cli(capsys, "translate", ngram_run, "text", f"{option}={value}"))


# --- seeds of any size and sign ----------------------------------------------------------------------

def draws(seed):
    return torch.rand(8, generator=torch_generator(seed))


def test_seeds_of_any_size_and_sign_reach_every_generator():
    assert generator_seed(1337) == 1337 and generator_seed(0) == 0  # nanoGPT's torch.manual_seed(1337)
    for seed in (-1, 2**32, 2**64 + 1, 2**100, -(2**100)):
        assert 0 <= generator_seed(seed) < 2**64 and generator_seed(seed) == generator_seed(int(str(seed)))
    assert torch.equal(draws(2**100), draws(2**100))
    for a, b in ((1, 2**64 + 1), (1, 2**32 + 1), (1, -1), (2**100, 2**100 + 1), (0, 2**32)):
        assert not torch.equal(draws(a), draws(b)), (a, b)
        assert not np.array_equal(numpy_generator(a).random(8), numpy_generator(b).random(8)), (a, b)
    with pytest.raises(TypeError):
        generator_seed(1.5)


def test_hmm_and_ngram_take_any_seed():
    for seed in (-1, 2**100):
        hmm = HMM(3, 4, seed=seed)
        assert np.array_equal(hmm.transmat, HMM(3, 4, seed=seed).transmat)
        assert not np.array_equal(hmm.transmat, HMM(3, 4, seed=1).transmat)
        symbols, _ = hmm.sample(20, seed=seed)
        assert len(symbols) == 20
    model = NGramLM(2, 3).fit(np.array([0, 1, 2, 1, 0, 2, 2, 1]))
    assert np.array_equal(model.sample(30, seed=-5), model.sample(30, seed=-5))
    assert not np.array_equal(model.sample(30, seed=-5), model.sample(30, seed=5))


def test_sample_seeds_of_any_size_through_the_cli(ngram_run, capsys):
    def sample(seed):
        code, out, err = run_cli(capsys, "sample", ngram_run, "--temperature", "1", "--seed", seed,
                                 "--max-new-tokens", "80")
        assert code == 0, err
        return out

    assert sample(1) == sample(1)
    assert sample(1) != sample(2**64 + 1)  # not the same 32 (or 64) bits
    assert sample(1) != sample(-1)
    assert sample(2**100) == sample(2**100) != sample(2**100 + 1)


@pytest.mark.parametrize("family", ["transformer", "hmm"])
def test_train_seeds_of_any_size_and_sign(workspace, capsys, family):
    tmp, _ = workspace
    config = write_config(tmp, family)
    for seed in (-7, 2**100):
        code, _, err = run_cli(capsys, "train", config, "--out", tmp / f"{family}{seed}", "--no-progress",
                               f"--train.seed={seed}")
        assert code == 0, err
        assert load_config(tmp / f"{family}{seed}" / "config.toml").train.seed == seed


# --- n-gram orders whose keys overflow ---------------------------------------------------------------

def test_max_order_is_the_largest_that_fits_int64():
    for vocab_size in (1, 2, 65, 500, 50257):
        n = max_order(vocab_size)
        assert (vocab_size + 2) ** n < 2**63 <= (vocab_size + 2) ** (n + 1)
    assert max_order(65) == 10
    NGramLM(10, 65)  # fits
    with pytest.raises(ValueError, match="the largest order that fits is 10"):
        NGramLM(11, 65)


def test_an_ngram_order_too_large_is_one_line_before_counting(workspace, capsys):
    tmp, _ = workspace
    vocab_size = len(set((tmp / "corpus.txt").read_text(encoding="utf-8"))) + 256  # its characters and byte tokens
    order = max_order(vocab_size) + 1
    line = error_line(*run_cli(capsys, "-q", "train", write_config(tmp, "ngram"), "--out", tmp / "run",
                               f"--model.order={order}"))
    assert f"model.order = {order}" in line and f"largest order that fits is {max_order(vocab_size)}" in line
    assert not (tmp / "run" / "ngram").exists()  # nothing counted or saved


# --- BPE vocabulary sizes ----------------------------------------------------------------------------

def test_a_bpe_vocabulary_too_large_is_one_line(workspace, capsys):
    tmp, config = workspace
    line = error_line(*run_cli(capsys, "train", config, "--out", tmp / "run", "--tokenizer.kind=bpe",
                               "--tokenizer.vocab_size=1000000000"))
    assert "tokenizer.vocab_size = 1000000000" in line and "1,000,000" in line
    assert BPE_MAX_VOCAB_SIZE == MAX_VOCAB_SIZE
    load_config(None, ["tokenizer.kind=bpe", f"tokenizer.vocab_size={MAX_VOCAB_SIZE}"])  # the bound itself is fine
    load_config(None, ["tokenizer.kind=word", "tokenizer.vocab_size=1000000000"])  # word keeps what it finds


def test_bpe_train_refuses_a_vocabulary_too_large():
    with pytest.raises(TokenizerError, match="at most 1000000"):
        BPETokenizer.train("low lower lowest", vocab_size=10**9)


# --- an empty prompt without a newline in the vocabulary ----------------------------------------------

def test_an_empty_prompt_starts_from_a_newline_or_id_0():
    with_newline = CharTokenizer.train("ab\ncd")
    assert prompt_ids(with_newline, "", None) == with_newline.encode("\n")
    assert prompt_ids(CharTokenizer.train("to be or not"), "", None) == [0]
    unknown = CharTokenizer.train("to be or not", unknown_token=True)  # "\n" would be <unk>: not a newline
    assert prompt_ids(unknown, "", 8) == [0]
    words = WordTokenizer.train("to be or not to be", vocab_size=300)
    assert words.decode(prompt_ids(words, "", None)) == "\n"
    assert prompt_ids(CharTokenizer.train("to be"), "be", None) == CharTokenizer.train("to be").encode("be")


def test_a_corpus_without_a_newline_trains_and_samples(workspace, capsys):
    tmp, config = workspace
    corpus = tmp / "flat.txt"
    corpus.write_text("to be or not to be that is the question " * 60, encoding="utf-8")
    run = tmp / "flat"
    code, _, err = run_cli(capsys, "train", config, "--out", run, "--no-progress", f"--data.corpus={corpus}")
    assert code == 0, err
    assert (run / "samples.txt").read_text(encoding="utf-8").strip()  # the evaluation sample was written
    code, out, err = run_cli(capsys, "sample", run, "--max-new-tokens", "12", "--seed", "3")
    assert code == 0 and "\n" not in out.rstrip("\n") and out.strip(), err


# --- a file where a run directory goes ---------------------------------------------------------------

@pytest.mark.parametrize("command", ["sample", "eval", "info"])
def test_a_file_given_as_the_run_directory_is_named_as_a_file(workspace, capsys, command):
    tmp, _ = workspace
    line = error_line(*run_cli(capsys, command, tmp / "corpus.txt"))
    assert f"{tmp / 'corpus.txt'} is a file, not a run directory" in line
    assert "does not exist" in error_line(*run_cli(capsys, command, tmp / "nowhere"))
