"""Every family through every verb, as scikit-learn's `parametrize_with_checks` runs every estimator
through one battery: train, info, eval, sample (CLI and API, with top-k, top-p and a stop string),
inspect and compare. Each step works or says in one line why it does not apply; none ends in a
traceback."""

import json

import pytest
import torch

import seqlab
from seqlab import api, families
from seqlab.cli import main
from seqlab.config import SampleConfig
from seqlab.models.contract import LanguageModel

# Tiny settings per family: a few seconds each on two cores.
TINY = {
    "ngram": {"order": 3},
    "hmm": {"n_states": 3, "em_iterations": 2},
    "mlp": {"context": 3, "d_embed": 4, "d_hidden": 16, "block_size": 16},
    "wavenet": {"n_layer": 2, "d_embed": 8, "d_residual": 8, "d_skip": 8, "block_size": 16},
    "rnn": {"n_layer": 1, "d_model": 16, "block_size": 16},
    "gated": {"n_layer": 1, "d_model": 16, "block_size": 16},
    "gru": {"n_layer": 1, "d_model": 16, "block_size": 16},
    "lstm": {"n_layer": 1, "d_model": 16, "block_size": 16},
    "mamba": {"n_layer": 1, "d_model": 16, "d_state": 4, "block_size": 16},
    "transformer": {"n_layer": 1, "n_head": 2, "d_model": 16, "block_size": 32},
    "encoder_decoder": {"n_layer": 1, "n_head": 2, "d_model": 16, "block_size": 32},
    "rnn_seq2seq": {"n_layer": 1, "d_model": 16, "block_size": 32},
}
# The word-vector families learn vectors, not next-token probabilities: their own battery below.
VECTORS = {
    "word2vec": {"d_model": 8, "window": 2, "min_count": 2},
    "glove": {"d_model": 8, "window": 3, "min_count": 2},
}
PROMPT = "to "
LANGUAGE_MODELS = [f for f, e in families.FAMILIES.items() if e.language_model]


def test_every_family_is_exercised():
    assert set(TINY) == set(LANGUAGE_MODELS)
    assert set(VECTORS) == set(families.FAMILIES) - set(LANGUAGE_MODELS)


def _toml(value) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, word_corpus):
    return word_corpus(tmp_path_factory.mktemp("corpus") / "words.txt", size=3000)


def write_config(path, family: str, corpus) -> str:
    pairs = families.get(family).reads_pairs
    data = ('task = "reverse"\ntask_examples = 40\ntask_max_len = 6\n' if pairs else f'corpus = "{corpus}"\n')
    model = "".join(f"{key} = {_toml(value)}\n" for key, value in {**TINY, **VECTORS}[family].items())
    path.write_text(f'[data]\n{data}\n[model]\nfamily = "{family}"\n{model}\n'
                    "[train]\nmax_steps = 3\nbatch_size = 4\neval_every = 0\ncheckpoint_every = 0\n"
                    "sample_tokens = 0\n", encoding="utf-8")
    return str(path)


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: ")
    return lines[0]


@pytest.mark.parametrize("family", list(TINY))
def test_family_through_every_verb(family, tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    entry = families.get(family)
    config = write_config(tmp_path / f"{family}.toml", family, corpus)
    run = str(tmp_path / "run")

    assert main(["train", config, "--out", run, "--no-progress"]) == 0
    assert "Traceback" not in capsys.readouterr().err

    assert main(["info", run, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == family and info["model"]["family"] == family

    assert main(["eval", run, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert torch.isfinite(torch.tensor(result["loss"]))

    sample = ["sample", run, "--prompt", PROMPT, "--max-new-tokens", "30", "--top-k", "5", "--top-p", "0.9",
              "--temperature", "1.5", "--seed", "3"]
    if entry.reads_pairs:  # the prompt is a source to translate, of the task's letters
        sample[3] = "abcd"
        assert main(sample) == 0
        assert main(["translate", run, "abcd"]) == 0
        assert main(["inspect", run, "--text", "abc", "--out", str(tmp_path / "page.html")]) == 0
        assert "attention cross" in capsys.readouterr().out  # the alignment of its greedy translation
        assert "seq2seq" in one_line_error(capsys, main(["compare", config, "--out", str(tmp_path / "cmp")]))
        return

    # The CLI stops each sample at the stop string; two samples stop on their own.
    assert main([*sample, "--stop", "e"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out.startswith(PROMPT) and "e" not in out[len(PROMPT):-1]
    assert main([*sample, "--stop", "e", "--num-samples", "2"]) == 0
    for text in capsys.readouterr().out.rstrip("\n").split("\n---------------\n"):
        assert text.startswith(PROMPT) and "e" not in text[len(PROMPT):-1]

    # The API: every family's model is a LanguageModel with generate, seeded and filtered alike.
    model, tokenizer = seqlab.load(run)
    assert isinstance(model, LanguageModel)
    ids = torch.tensor([tokenizer.encode(PROMPT)] * 2)
    first = model.generate(ids, 12, temperature=1.2, top_k=4, top_p=0.8, seed=7)
    assert first.shape == (2, len(PROMPT) + 12)
    assert torch.equal(first, model.generate(ids, 12, temperature=1.2, top_k=4, top_p=0.8, seed=7))
    greedy = model.generate(ids[:1], 8, temperature=0)
    assert torch.equal(greedy, model.generate(ids[:1], 8, temperature=0, top_k=1, seed=1))
    options = SampleConfig(prompt=PROMPT, max_new_tokens=30, top_k=5, top_p=0.9, temperature=1.5, seed=3, stop="e")
    streamed = "".join(api.stream_sample(model, tokenizer, options, echo_prompt=True))
    assert streamed == out  # the CLI and the API share one sampling path

    assert main(["inspect", run, "--text", "to be or not", "--out", str(tmp_path / "page.html")]) == 0
    assert (tmp_path / "page.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    capsys.readouterr()

    assert main(["compare", config, "--out", str(tmp_path / "cmp"), "--no-progress", "--sample-tokens", "5"]) == 0
    assert family in capsys.readouterr().out


@pytest.mark.parametrize("family", [f for f in LANGUAGE_MODELS if not (families.get(f).reads_pairs
                                                                         or families.get(f).context_option)])
def test_a_family_not_scored_in_windows_refuses_a_context(family, tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = write_config(tmp_path / f"{family}.toml", family, corpus)
    assert main(["train", config, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    capsys.readouterr()
    assert "--context" in one_line_error(capsys, main(["eval", str(tmp_path / "run"), "--context", "8"]))


@pytest.mark.parametrize("family", list(VECTORS))
def test_word_vector_family_through_the_verbs_that_apply(family, tmp_path, corpus, capsys, monkeypatch):
    """Trained, described and queried with `embed`; the language-model verbs refuse in one line."""
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = write_config(tmp_path / f"{family}.toml", family, corpus)
    run = str(tmp_path / "run")
    assert main(["train", config, "--out", run, "--no-progress", "--tokenizer.kind=word"]) == 0
    capsys.readouterr()
    assert main(["info", run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == family
    assert main(["embed", run, "--neighbors", "the", "--top", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) >= 3
    model, tokenizer = seqlab.load(run)
    offset = tokenizer.byte_fallback_offset  # a new config's: the lines' glued full stops are spelled in bytes
    assert offset is not None and offset + 0x2E in tokenizer.encode("Tis.")
    assert not model.known[offset:].any()  # bytes are not words: dropped as <unk> is
    for verb in (["sample", run, "--prompt", "the"], ["inspect", run, "--text", "the cat"]):
        line = one_line_error(capsys, main(verb))
        assert "word-vector" in line or family in line, line


def test_a_key_of_another_family_names_that_family(capsys):
    line = one_line_error(capsys, main(["train", "shakespeare-char", "--model.order=3"]))
    assert "model.order is a setting of model.family = ngram" in line and "[model] of transformer has:" in line


def names_corpus(path, n=300, seed=0):
    """Seeded made-up names, one a line (makemore's names.txt in miniature)."""
    import random
    rng = random.Random(seed)
    syllables = ["ma", "ri", "an", "el", "jo", "sa", "li", "na", "ka", "ya", "em", "ol"]
    path.write_text("\n".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(n))
                    + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("family", [f for f in LANGUAGE_MODELS if not families.get(f).reads_pairs])
def test_every_language_model_family_trains_on_lines(family, tmp_path, monkeypatch):
    """data.sequences = lines: each line a sequence framed by the newline token. The split's loss is
    each line's contract score, [boundary] * (1 + padding) + line + [boundary], less the padding."""
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = names_corpus(tmp_path / "names.txt")
    config = write_config(tmp_path / f"{family}.toml", family, corpus)
    text = open(config, encoding="utf-8").read().replace("[data]\n", '[data]\nsequences = "lines"\n')
    open(config, "w", encoding="utf-8").write(text)
    run = seqlab.train(config, out=tmp_path / "run", progress=False)
    result = seqlab.evaluate(run)
    assert result["lines"] == 30 and result["split"] == "val"  # makemore's 10 %
    model, tokenizer = seqlab.load(run)
    settings = seqlab.runs.read_config(run).model
    padding = families.get(family).line_padding(settings)
    boundary = tokenizer.encode("\n")[0]
    names = corpus.read_text(encoding="utf-8").split("\n")[:-1]
    from seqlab.data.lines import split_lines
    _, val, _ = split_lines(names, seed=42)
    total, count = 0.0, 0
    with torch.inference_mode():
        for name in val:
            framed = torch.tensor([[boundary] * (1 + padding) + tokenizer.encode(name) + [boundary]])
            total -= float(model.token_log_probs(framed)[0, padding:].double().sum())
            count += len(name) + 1
    assert result["tokens"] == count
    assert result["loss"] == pytest.approx(total / count, rel=1e-5)
    assert seqlab.evaluate(run, split="test")["lines"] == 30
