"""Tracing (seqlab.inspect.trace): attention equals Hugging Face's `output_attentions` for imported
GPT-2 and LLaMA (grouped-query) models; the traced weights reproduce the fused attention output;
every position scheme gives rows that sum to 1 and are 0 above the diagonal; recurrent states are
the stack's own; every registered family is traced; the hooks are gone afterwards."""

import json
import math

import numpy as np
import pytest
import torch

from seqlab import families
from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.inspect import trace, tracing
from seqlab.models import TransformerLM
from seqlab.models.encoder_decoder import EncoderDecoder
from seqlab.models.rnn import RecurrentConfig, RNNLM
from seqlab.nn.attention import attention_inputs

V = 11
IDS = [1, 2, 3, 4, 5, 1, 2, 3, 4, 6, 7, 0]


def no_hooks(model: torch.nn.Module) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks) for m in model.modules())


def randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn afresh (norm gains near 1), so that a swapped tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            gain = p.ndim == 1 and ("ln_" in name or "norm" in name) and name.endswith("weight")
            p.copy_(1.0 + 0.1 * noise if gain else 0.2 * noise)
    return model.eval()


def hf_gpt2(seed: int):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=50, n_positions=32,
                                     bos_token_id=None, eos_token_id=None)
    torch.manual_seed(seed)
    return randomized(transformers.GPT2LMHeadModel(config), seed)


def hf_llama(seed: int):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                      intermediate_size=64, num_hidden_layers=2, vocab_size=50,
                                      max_position_embeddings=64, bos_token_id=None, eos_token_id=None,
                                      pad_token_id=None, rope_theta=500.0)
    torch.manual_seed(seed)
    return randomized(transformers.LlamaForCausalLM(config), seed)


@pytest.mark.parametrize("make", [hf_gpt2, hf_llama], ids=["gpt2", "llama-gqa"])
@pytest.mark.parametrize("seed", [0, 1])
def test_attention_equals_transformers_output_attentions(make, seed, tmp_path):
    from seqlab.interop import from_hf

    reference = make(seed)
    reference.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    ids = torch.randint(0, 50, (20,), generator=torch.Generator().manual_seed(seed))
    reference.config._attn_implementation = "eager"  # the written-out softmax, which returns weights
    with torch.no_grad():
        expected = reference(ids[None], output_attentions=True).attentions  # L × (1, H, T, T)
    got = trace(model, ids).attention["self"]  # (L, H, T, T), every query head (GQA repeated)
    assert got.shape == (2, 4, 20, 20)
    for layer, weights in enumerate(expected):
        torch.testing.assert_close(got[layer], weights[0], atol=1e-6, rtol=0)
    assert no_hooks(model)


def positions_config(position: str, **extra) -> ModelConfig:
    return ModelConfig(n_layer=2, n_head=4, n_kv_head=2, d_model=16, block_size=16, position=position,
                       bias=False, **extra)


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope", "alibi", "relative", "none"])
def test_traced_weights_times_values_give_the_fused_output(position):
    """Weights recorded on the explicit path, times V, equal the fused (SDPA) layer's output; rows
    sum to 1 and nothing is attended above the diagonal."""
    torch.manual_seed(0)
    model = TransformerLM(positions_config(position), V).eval()
    ids = torch.tensor([IDS])
    attn = model.blocks[1].attn
    seen = {}
    handle = attn.register_forward_hook(lambda m, args, out: seen.update(x=args[0], inputs=args[1], y=out[0]))
    with tracing(model, ["attention"]) as recorder:
        model(ids)
    handle.remove()
    weights = recorder.attention()["self"]  # (L, H, T, T)
    T = len(IDS)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, T))
    assert (weights.triu(1) == 0).all()
    with torch.no_grad():  # the layer again, by the fused path, and by weights @ V
        fused, none = attn(seen["x"], seen["inputs"])
        assert none is None
        H, G, Dh = attn.n_head, attn.n_kv_head, attn.head_dim
        v = attn.qkv(seen["x"]).split((H * Dh, G * Dh, G * Dh), dim=-1)[2].view(1, T, G, Dh).transpose(1, 2)
        v = v.repeat_interleave(H // G, dim=1)  # (1, H, T, Dh)
        y = (weights[1][None] @ v).transpose(1, 2).reshape(1, T, H * Dh)
        torch.testing.assert_close(attn.out(y), fused, atol=1e-5, rtol=1e-5)
    assert no_hooks(model)


def test_hooks_are_removed_when_the_block_raises():
    model = TransformerLM(positions_config("rope"), V)
    with pytest.raises(RuntimeError, match="inside"):
        with tracing(model):
            assert not no_hooks(model)
            raise RuntimeError("inside")
    assert no_hooks(model)


def test_encoder_decoder_attention_kinds():
    torch.manual_seed(0)
    config = EncoderDecoderConfig(n_layer=2, n_head=2, d_model=16, block_size=16, position="relative")
    model = EncoderDecoder(config, V).eval()
    t = trace(model, IDS[:6], source=[3, 4, 5, 6, 7])
    assert t.attention["encoder"].shape == (2, 2, 5, 5) and t.attention["cross"].shape == (2, 2, 6, 5)
    assert t.attention["self"].shape == (2, 2, 6, 6) and (t.attention["self"].triu(1) == 0).all()
    above = torch.ones(5, 5, dtype=torch.bool).triu(1)
    assert (t.attention["encoder"][..., above] > 0).all()  # bidirectional
    for w in t.attention.values():
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    logits = model(torch.tensor([[3, 4, 5, 6, 7]]), torch.tensor([IDS[:6]]))[0][0]
    torch.testing.assert_close(t.log_probs, torch.log_softmax(logits, -1).detach())


def test_recurrent_states_are_the_stacks_own():
    torch.manual_seed(0)
    model = RNNLM(RecurrentConfig(family="lstm", n_layer=2, d_model=8), V).eval()
    t = trace(model, IDS)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        top, (h_n, c_n) = model.rnn(model.tok_emb(ids))
    torch.testing.assert_close(t.activations["layer1.hidden"], top[0])
    torch.testing.assert_close(t.activations["layer1.cell"][-1], c_n[1, 0])
    torch.testing.assert_close(t.activations["layer0.hidden"][-1], h_n[0, 0])
    assert set(t.activations) == {"layer0.hidden", "layer0.cell", "layer1.hidden", "layer1.cell"}


def test_transformer_mlp_neurons_and_residual_stream():
    torch.manual_seed(0)
    model = TransformerLM(positions_config("learned", activation="swiglu"), V).eval()
    t = trace(model, IDS)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        x = model.pos_emb.embed(model.tok_emb(ids), 0)
        inputs = attention_inputs(model.pos_emb, start=0, n_query=len(IDS), causal=True, device=x.device,
                                  dtype=x.dtype)
        torch.testing.assert_close(t.activations["resid.0"], x[0])
        block = model.blocks[0]
        h = x + block.attn(block.norm1(x), inputs)[0]
        n = block.norm2(h)
        torch.testing.assert_close(t.activations["layer0.mlp"], (block.mlp.activation(block.mlp.gate(n))
                                                                 * block.mlp.up(n))[0])
        torch.testing.assert_close(t.activations["resid.1"], (h + block.mlp(n))[0])


def build_tiny(name: str):
    """A tiny model of a registered family: built from its settings, or counted / fitted."""
    from seqlab.models import HMM, NGramLM

    family = families.get(name)
    torch.manual_seed(0)
    if family.build is None:
        data = np.random.default_rng(0).integers(0, V, 400)
        fitted = {"ngram": lambda: NGramLM(3, V).fit(data),
                  "hmm": lambda: HMM(3, V, seed=0, numerics="reference").fit([data], n_iter=2)}
        return fitted[name]() if name in fitted else None
    settings = family.settings(family=name, **SMALL.get(name, {}))
    return family.build_model(settings, V)


SMALL = {  # small enough to build in milliseconds
    "mlp": {"context": 3, "d_embed": 4, "d_hidden": 8},
    "wavenet": {"n_layer": 2, "d_embed": 4, "d_residual": 4, "d_skip": 4},
    **{f: {"n_layer": 2, "d_model": 8} for f in ("rnn", "gated", "gru", "lstm")},
    "transformer": {"n_layer": 2, "n_head": 2, "d_model": 8, "block_size": 16},
    "encoder_decoder": {"n_layer": 1, "n_head": 2, "d_model": 8, "block_size": 16},
    "rnn_seq2seq": {"n_layer": 1, "d_model": 8, "block_size": 16},
}


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_every_family_is_traced(name):
    """Each family's declared probes fill their part of the trace; the next-token distributions are
    the model's own (its `step`), the surprisal is in bits, and everything is JSON-safe."""
    family = families.get(name)
    model = build_tiny(name)
    if model is None:
        pytest.skip(f"{name} is fitted by its own procedure; its tracing is tested beside it")
    source = [1, 2, 3] if family.reads_pairs else None
    try:
        t = trace(model, IDS, source=source, probes=family.traced)
    except ValueError as exc:  # e.g. a word-vector family: no next-token model to trace
        pytest.skip(str(exc))
    T = len(IDS)
    assert t.log_probs.shape[0] == T and torch.isnan(t.surprisal[0])
    torch.testing.assert_close(t.log_probs.exp().sum(-1), torch.ones(T))
    expected = -t.log_probs[:-1].gather(-1, torch.tensor(IDS[1:])[:, None])[:, 0] / math.log(2)
    torch.testing.assert_close(t.surprisal[1:], expected)
    filled = {"attention": t.attention, "states": t.activations, "neurons": t.activations,
              "residual": t.activations, "trellis": t.hmm, "backoff": t.ngram, "router": t.router}
    for probe in family.traced:
        assert probe == "router" or filled[probe], f"{name}: probe {probe} recorded nothing"
    for kind, w in t.attention.items():
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), msg=kind)
    for acts in t.activations.values():
        assert acts.dim() == 2 and acts.shape[0] in (T, len(source or []))
    if source is None and hasattr(model, "step"):  # the distributions are the contract's
        state = model.new_state(1)
        logits, state = model.step(torch.tensor([IDS[:4]]), state)
        torch.testing.assert_close(t.log_probs[3], torch.log_softmax(logits[0].float(), -1), atol=1e-4, rtol=1e-4)
    json.dumps(t.to_json(top_k=3))
    if isinstance(model, torch.nn.Module):
        assert no_hooks(model)


def test_hmm_posteriors_and_viterbi():
    from seqlab.models import HMM

    hmm = HMM(startprob=[0.6, 0.4], transmat=[[0.7, 0.3], [0.4, 0.6]], emissionprob=[[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]],
              numerics="reference")
    t = trace(hmm, [0, 1, 2], probes=["trellis"])
    assert t.hmm["viterbi"].tolist() == [1, 0, 0]  # the weather example
    torch.testing.assert_close(t.hmm["posteriors"].sum(-1), torch.ones(3))


def test_ngram_answering_order_and_weights():
    from seqlab.models import NGramLM

    model = NGramLM(3, 4).fit(np.array([0, 1, 2, 0, 1, 2, 0, 1]))
    t = trace(model, [0, 1, 3, 0, 1, 2], probes=["backoff"])
    # 3 never occurred: order 0 (uniform) answers it; 0 after 3 is a unigram; "0 1 2" a trigram.
    assert t.ngram["order"].tolist() == [1, 2, 0, 1, 2, 3]
    torch.testing.assert_close(t.ngram["weights"].sum(-1), torch.ones(6, dtype=torch.float32))
    torch.testing.assert_close(t.ngram["share"].sum(-1), torch.ones(6, dtype=torch.float32))
    assert t.ngram["share"][2, 0] == 1.0  # only the uniform level gives the unseen token probability
