import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence

from seqlab.nn.recurrent import GRU, LSTM, RNN, GatedRNN

MODES = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
F_IN, H, T, B = 4, 3, 5, 3


def build(mode: str, num_layers: int = 1, **kwargs):
    """Ours and torch.nn's module for `mode`, float64, with the same random (non-default) weights
    (`weight_dropout`, which torch.nn lacks, goes to ours alone)."""
    theirs = {key: value for key, value in kwargs.items() if key != "weight_dropout"}
    match mode:
        case "rnn_tanh" | "rnn_relu":
            act = mode.removeprefix("rnn_")
            ours, ref = RNN(F_IN, H, num_layers, nonlinearity=act, **kwargs), nn.RNN(F_IN, H, num_layers, nonlinearity=act, **theirs)
        case "gru":
            ours, ref = GRU(F_IN, H, num_layers, **kwargs), nn.GRU(F_IN, H, num_layers, **theirs)
        case "lstm":
            ours, ref = LSTM(F_IN, H, num_layers, **kwargs), nn.LSTM(F_IN, H, num_layers, **theirs)
        case "gated":
            return GatedRNN(F_IN, H, num_layers, **kwargs).double(), None
    ref = ref.double()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 0.6)  # larger than the init, so a misplaced gate or bias shows
    ours = ours.double()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def random_state(mode: str, layers_x_dirs: int, batch: int):
    shape = (layers_x_dirs, batch, H)
    if mode == "lstm":
        return torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    return torch.randn(shape, dtype=torch.float64)


def as_list(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def run_with_grads(module, x, hx=None, *, prepare=lambda x: x, **kwargs) -> dict[str, torch.Tensor]:
    """Output, final state(s) and the gradients of a fixed scalar of both w.r.t. x, hx and each parameter.

    `prepare` turns the leaf x into the module's input (e.g. packs it), so gradients reach x through it.
    """
    x = x.detach().requires_grad_()
    leaves = [x]
    if hx is not None:
        hx = tuple(s.detach().requires_grad_() for s in as_list(hx))
        leaves += list(hx)
        hx = hx if len(hx) == 2 else hx[0]
    output, h_n = module(prepare(x), hx, **kwargs)
    packed = isinstance(output, nn.utils.rnn.PackedSequence)
    out = output.data if packed else output
    results = {"output": out} | {f"h_n[{i}]": s for i, s in enumerate(as_list(h_n))}
    # A fixed, non-uniform cotangent: every position and unit weighs differently.
    loss = sum((t * torch.linspace(-1, 1, t.numel(), dtype=t.dtype).reshape(t.shape)).sum() for t in results.values())
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad(loss, leaves + list(params))
    results |= {f"grad_{name}": g for name, g in zip(["input", "h0", "c0"][: len(leaves)], grads[: len(leaves)])}
    results |= {f"grad_{name}": g for name, g in zip(names, grads[len(leaves):])}
    if packed:
        results |= {"batch_sizes": output.batch_sizes, "sorted_indices": output.sorted_indices,
                    "unsorted_indices": output.unsorted_indices}
    return results


def assert_same(ours: dict, ref: dict) -> None:
    assert ours.keys() == ref.keys()
    for key, expected in ref.items():
        torch.testing.assert_close(ours[key], expected, msg=lambda m, key=key: f"{key}: {m}")


# -- parity with torch.nn ------------------------------------------------------------------------


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_equals_torch_nn(mode, num_layers, bidirectional, batch_first, bias, with_hx, explicit, seed=0):
    torch.manual_seed(seed)
    ours, ref = build(mode, num_layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    x = torch.randn((B, T, F_IN) if batch_first else (T, B, F_IN), dtype=torch.float64)
    hx = random_state(mode, num_layers * (1 + bidirectional), B) if with_hx else None
    assert_same(run_with_grads(ours, x, hx, explicit=explicit), run_with_grads(ref, x, hx))


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
def test_packed_sequence_equals_torch_nn(mode, bidirectional, explicit, seed=1):
    torch.manual_seed(seed)
    ours, ref = build(mode, 2, bidirectional=bidirectional)
    lengths = torch.tensor([3, 5, 1, 5])  # unsorted, with a tie

    def pack(x):
        return pack_sequence([x[:n, b] for b, n in enumerate(lengths)], enforce_sorted=False)
    x = torch.randn(T, len(lengths), F_IN, dtype=torch.float64)
    hx = random_state(mode, 2 * (1 + bidirectional), len(lengths))
    assert_same(run_with_grads(ours, x, hx, prepare=pack, explicit=explicit),
                run_with_grads(ref, x, hx, prepare=pack))


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
def test_lengths_equal_torch_nn_on_packed(mode, bidirectional, batch_first, explicit, seed=2):
    torch.manual_seed(seed)
    ours, ref = build(mode, 2, bidirectional=bidirectional, batch_first=batch_first)
    lengths = torch.tensor([2, 5, 1, 4])
    x = torch.randn((4, T, F_IN) if batch_first else (T, 4, F_IN), dtype=torch.float64)
    hx = random_state(mode, 2 * (1 + bidirectional), 4)
    got = run_with_grads(ours, x, hx, lengths=lengths, explicit=explicit)

    class PackedRef(nn.Module):  # torch.nn on the packed batch, padded back: the reference semantics
        def forward(self, x, hx):
            output, h_n = ref(pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False), hx)
            return pad_packed_sequence(output, batch_first=batch_first, total_length=T)[0], h_n

        def named_parameters(self, *args, **kwargs):
            return ref.named_parameters(*args, **kwargs)

    assert_same(got, run_with_grads(PackedRef(), x, hx))
    padded = torch.arange(T).unsqueeze(0 if batch_first else 1).unsqueeze(-1) >= lengths.unsqueeze(1 if batch_first else 0).unsqueeze(-1)
    assert (got["output"] * padded).abs().max() == 0  # outputs at padded positions are zero


def test_unbatched_input_equals_torch_nn():
    torch.manual_seed(3)
    for mode in MODES:
        ours, ref = build(mode, 2, bidirectional=True)
        x, hx = torch.randn(T, F_IN, dtype=torch.float64), random_state(mode, 4, 1)
        hx = tuple(s[:, 0] for s in hx) if mode == "lstm" else hx[:, 0]  # (L·D, H)
        for explicit in (False, True):
            assert_same(run_with_grads(ours, x, hx, explicit=explicit), run_with_grads(ref, x, hx))


# -- GatedRNN ------------------------------------------------------------------------------------


def gated_rnn_by_hand(module: GatedRNN, x, lengths, hx):
    """The lectures' equations, one sequence and one step at a time: x (T, B, F), hx (L·D, B, H)."""
    p = dict(module.named_parameters())
    dirs = module.num_directions
    outputs, finals = [], torch.zeros_like(hx)
    for b in range(x.shape[1]):
        layer_in = x[: lengths[b], b]  # (T_b, F): only the real steps of sequence b
        for layer in range(module.num_layers):
            per_dir = []
            for d in range(dirs):
                sfx = f"l{layer}" + ("_reverse" if d else "")
                W_xh, W_xz = p[f"weight_ih_{sfx}"][:H], p[f"weight_ih_{sfx}"][H:]
                W_hh, W_hz = p[f"weight_hh_{sfx}"][:H], p[f"weight_hh_{sfx}"][H:]
                b_h = p[f"bias_ih_{sfx}"][:H] + p[f"bias_hh_{sfx}"][:H] if module.bias else 0
                b_z = p[f"bias_ih_{sfx}"][H:] + p[f"bias_hh_{sfx}"][H:] if module.bias else 0
                h = hx[layer * dirs + d, b]
                hs = [None] * len(layer_in)
                for t in (reversed(range(len(layer_in))) if d else range(len(layer_in))):
                    h_bar = torch.relu(W_xh @ layer_in[t] + W_hh @ h + b_h)
                    z = torch.sigmoid(W_xz @ layer_in[t] + W_hz @ h + b_z)
                    h = z * h + (1 - z) * h_bar
                    hs[t] = h
                finals[layer * dirs + d, b] = h
                per_dir.append(torch.stack(hs))
            layer_in = torch.cat(per_dir, dim=-1)  # (T_b, D·H)
        outputs.append(torch.cat([layer_in, layer_in.new_zeros(x.shape[0] - len(layer_in), dirs * H)]))
    return torch.stack(outputs, dim=1), finals  # (T, B, D·H), (L·D, B, H)


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_gated_rnn_explicit_path_is_the_lectures_equations(num_layers, bidirectional, bias, use_lengths, seed=4):
    torch.manual_seed(seed)
    module, _ = build("gated", num_layers, bidirectional=bidirectional, bias=bias)
    x = torch.randn(T, B, F_IN, dtype=torch.float64)
    hx = torch.randn(num_layers * (1 + bidirectional), B, H, dtype=torch.float64)
    lengths = torch.tensor([3, 5, 1]) if use_lengths else torch.full((B,), T)
    with torch.no_grad():
        output, h_n = module(x, hx, lengths=lengths if use_lengths else None, explicit=True)
        expected_output, expected_h_n = gated_rnn_by_hand(module, x, lengths, hx)
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(h_n, expected_h_n)


@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_gated_rnn_fast_path_equals_explicit(num_layers, bidirectional, batch_first, with_hx, use_lengths, seed=5):
    torch.manual_seed(seed)
    module, _ = build("gated", num_layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn((B, T, F_IN) if batch_first else (T, B, F_IN), dtype=torch.float64)
    hx = random_state("gated", num_layers * (1 + bidirectional), B) if with_hx else None
    lengths = torch.tensor([3, 5, 1]) if use_lengths else None
    assert_same(run_with_grads(module, x, hx, lengths=lengths),
                run_with_grads(module, x, hx, lengths=lengths, explicit=True))


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
def test_gated_rnn_packed_equals_lengths(explicit, seed=6):
    torch.manual_seed(seed)
    module, _ = build("gated", 2, bidirectional=True)
    lengths = torch.tensor([2, 5, 4])
    x = torch.randn(T, B, F_IN, dtype=torch.float64)
    packed_out, packed_h_n = module(pack_padded_sequence(x, lengths, enforce_sorted=False), explicit=explicit)
    output, h_n = module(x, lengths=lengths, explicit=explicit)
    torch.testing.assert_close(pad_packed_sequence(packed_out, total_length=T)[0], output)
    torch.testing.assert_close(packed_h_n, h_n)


# -- invariants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("mode", MODES + ["gated"])
def test_padding_does_not_change_real_positions(mode, explicit, seed=7):
    torch.manual_seed(seed)
    module, _ = build(mode, 2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([2, 5, 3])
    real = torch.randn(B, T, F_IN, dtype=torch.float64)
    is_real = (torch.arange(T) < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
    results = []
    for total, pad_scale in [(T, 1.0), (T, 100.0), (T + 3, 5.0)]:  # padding content and length vary
        x = pad_scale * torch.randn(B, total, F_IN, dtype=torch.float64)
        x[:, :T] = torch.where(is_real, real, x[:, :T])
        output, h_n = module(x, lengths=lengths, explicit=explicit)
        assert torch.count_nonzero(output[:, T:]) == 0
        results.append((output[:, :T], as_list(h_n)))
    for output, h_n in results[1:]:
        torch.testing.assert_close(output, results[0][0])
        torch.testing.assert_close(h_n, results[0][1])


@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("mode", MODES + ["gated"])
def test_carrying_the_state_across_windows_equals_one_pass(mode, explicit, seed=8):
    torch.manual_seed(seed)
    module, _ = build(mode, 2)
    x = torch.randn(9, B, F_IN, dtype=torch.float64)
    with torch.no_grad():
        whole, whole_h_n = module(x, explicit=explicit)
        first, h_mid = module(x[:4], explicit=explicit)
        second, h_end = module(x[4:], h_mid, explicit=explicit)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(as_list(h_end), as_list(whole_h_n))


@pytest.mark.filterwarnings("ignore:dropout option adds dropout")  # torch.nn's own, for num_layers=1
@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("mode", MODES + ["gated"])
def test_dropout_only_between_layers_and_only_in_training(mode, explicit, seed=9):
    torch.manual_seed(seed)
    x = torch.randn(T, B, F_IN, dtype=torch.float64)
    with torch.no_grad():
        for num_layers in (1, 2):
            plain, _ = build(mode, num_layers, bidirectional=True)
            dropped, _ = build(mode, num_layers, bidirectional=True, dropout=0.5)
            dropped.load_state_dict(plain.state_dict())
            plain_out, plain_h = plain.eval()(x, explicit=explicit)
            eval_out, _ = dropped.eval()(x, explicit=explicit)
            torch.testing.assert_close(eval_out, plain_out)  # eval: no dropout anywhere
            train_out, train_h = dropped.train()(x, explicit=explicit)
            top = slice(2 * (num_layers - 1), None)  # the last layer's two directions
            if num_layers == 1:  # nothing after the last layer: training changes nothing
                torch.testing.assert_close(train_out, plain_out)
            else:  # the first layer's final state is untouched; what feeds the second layer is dropped
                torch.testing.assert_close(as_list(train_h)[0][:2], as_list(plain_h)[0][:2])
                assert not torch.allclose(as_list(train_h)[0][top], as_list(plain_h)[0][top])
                assert not torch.allclose(train_out, plain_out)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("mode", MODES + ["gated"])
def test_dropout_fast_path_equals_explicit_in_training(mode, packed, seed=10):
    """In training on the CPU the fast path runs one kernel call per layer and draws the masks
    between them with seqlab.nn.dropout, as the explicit path does: the same seed, the same masks,
    so outputs, states and gradients agree (3 layers: two masks, drawn in the same order)."""
    torch.manual_seed(seed)
    lengths = torch.tensor([3, 5, 1])
    x, hx = torch.randn(T, len(lengths), F_IN, dtype=torch.float64), random_state(mode, 6, len(lengths))
    module, _ = build(mode, 3, bidirectional=True, dropout=0.4)
    module.train()

    def pack(x):
        return pack_sequence([x[:n, b] for b, n in enumerate(lengths)], enforce_sorted=False) if packed else x
    torch.manual_seed(seed + 1)
    fast = run_with_grads(module, x, hx, prepare=pack)
    torch.manual_seed(seed + 1)
    assert_same(run_with_grads(module, x, hx, prepare=pack, explicit=True), fast)
    module.eval()
    assert not torch.allclose(run_with_grads(module, x, hx, prepare=pack)["output"], fast["output"])


@pytest.mark.parametrize("mode", MODES + ["gated"])
def test_weight_dropout_fast_path_equals_explicit_in_training(mode, seed=11):
    """One DropConnect mask per forward, drawn before either path runs: the same seed gives both
    paths the same masked weights, so outputs, states and gradients agree."""
    torch.manual_seed(seed)
    x, hx = torch.randn(T, B, F_IN, dtype=torch.float64), random_state(mode, 4, B)
    module, _ = build(mode, 2, bidirectional=True, weight_dropout=0.4)
    module.train()
    torch.manual_seed(seed + 1)
    fast = run_with_grads(module, x, hx)
    torch.manual_seed(seed + 1)
    assert_same(run_with_grads(module, x, hx, explicit=True), fast)
    assert fast["grad_weight_hh_l1"].ne(0).any()


@pytest.mark.parametrize("mode", MODES)
def test_weight_dropout_is_torch_nn_with_masked_recurrent_weights(mode, seed=12):
    """Training with weight_dropout p equals torch.nn's module (no dropout) whose every weight_hh is
    that matrix with elements zeroed at rate p and the rest scaled by 1/(1-p); eval uses the weights as
    they are; the other weights and the biases are never dropped."""
    p = 0.5
    torch.manual_seed(seed)
    x = torch.randn(T, B, F_IN, dtype=torch.float64)
    ours, ref = build(mode, 2, weight_dropout=p)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x)[0], ref(x)[0])  # eval: no mask
        torch.manual_seed(seed + 1)
        trained, _ = ours.train()(x)
        torch.manual_seed(seed + 1)  # the masks again, in the same order: layer by layer
        masks = {name: torch.nn.functional.dropout(torch.ones_like(w), p) for name, w in ours.named_parameters()
                 if name.startswith("weight_hh")}
        for name, mask in masks.items():
            assert set(mask.unique().tolist()) <= {0.0, 1 / (1 - p)}
            getattr(ref, name).mul_(mask)
        torch.testing.assert_close(trained, ref(x)[0])


def test_weight_dropout_drops_about_its_rate_and_rejects_one():
    lstm = LSTM(8, 64, weight_dropout=0.3).train()
    (w_ih, w_hh, *_), share = lstm._flat_weights(), lambda w: w.eq(0).double().mean().item()
    assert share(w_ih) == 0.0 and abs(share(w_hh) - 0.3) < 0.03  # 16,384 elements: 0.03 is over 8 sigma
    assert "weight_dropout=0.3" in repr(lstm)
    with pytest.raises(ValueError, match="weight_dropout"):
        LSTM(8, 4, weight_dropout=1.0)


# -- parameters, construction, errors ------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
def test_parameters_and_init_equal_torch_nn(mode, bidirectional, bias, seed=10):
    ours_cls, ref_cls, kw = {"rnn_tanh": (RNN, nn.RNN, {}), "rnn_relu": (RNN, nn.RNN, {"nonlinearity": "relu"}),
                             "gru": (GRU, nn.GRU, {}), "lstm": (LSTM, nn.LSTM, {})}[mode]
    torch.manual_seed(seed)
    ours = ours_cls(F_IN, H, 2, bidirectional=bidirectional, bias=bias, **kw)
    torch.manual_seed(seed)
    ref = ref_cls(F_IN, H, 2, bidirectional=bidirectional, bias=bias, **kw)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, msg=name)  # same shapes, same draws: same init as torch.nn


def test_gated_rnn_uses_torch_names_with_two_blocks_of_rows():
    gated = GatedRNN(F_IN, H, 2, bidirectional=True)
    ref = nn.RNN(F_IN, H, 2, bidirectional=True)
    assert [n for n, _ in gated.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for (name, p), r in zip(gated.named_parameters(), ref.parameters()):
        assert p.shape == (2 * r.shape[0], *r.shape[1:]), name
        assert p.abs().max() <= H ** -0.5


def test_clear_errors():
    with pytest.raises(NotImplementedError, match="proj_size"):
        LSTM(F_IN, H, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(F_IN, H, nonlinearity="sigmoid")
    gru = GRU(F_IN, H)
    x = torch.randn(T, B, F_IN)
    with pytest.raises(ValueError, match="lengths"):
        gru(x, lengths=torch.tensor([1, T + 1, 2]))
    with pytest.raises(ValueError, match="hx"):
        gru(x, torch.zeros(2, B, H))
    with pytest.raises(ValueError, match="hx"):
        LSTM(F_IN, H)(x, torch.zeros(1, B, H))
