"""The configuration schema: one frozen dataclass per TOML section.

Each field's annotation is its contract: `seqlab.config.load` checks every value against it (types,
closed sets of strings via `Literal`, and every float finite: TOML's inf and nan are errors) and
`__post_init__` adds the range checks. Derived values are properties; nothing here is mutated after
construction. A seed is any integer, of any size or sign (`seqlab.seeds` maps it to each generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

from seqlab.errors import ConfigError


def _require(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {allowed}")


def _require_finite(settings: object, section: str) -> None:
    """Every float field of the dataclass `settings` is finite (an inf or nan learning rate, say,
    would train to NaN weights without a word)."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float):
            _require(math.isfinite(value), f"{section}.{f.name}", value, "a finite number")


# The largest tokenizer.vocab_size of a BPE tokenizer: seqlab.tokenizers.bpe.MAX_VOCAB_SIZE, written
# out here so that reading a config does not load the tokenizers library.
BPE_MAX_VOCAB_SIZE = 1_000_000


@dataclass(frozen=True)
class DataConfig:
    corpus: str = "shakespeare"  # registry name, file, folder or glob
    val_fraction: float = 0.1  # the last fraction of the text (in characters) is validation
    # stream: the corpus is one text, read in windows; lines: each line is a sequence of its own,
    # framed by the newline token (makemore's names), the lines shuffled with line_seed and split
    # train / val / test as 1 - 2·val_fraction, val_fraction, val_fraction (makemore's 80/10/10).
    sequences: Literal["stream", "lines"] = "stream"
    line_seed: int = 42  # lines only: makemore's random.seed(42)
    # A generated seq2seq task instead of a corpus.
    task: Literal["", "copy", "reverse", "sort", "addition", "dates"] = ""
    task_examples: int = 20000  # generated pairs, of which val_fraction are held out
    task_min_len: int = 1
    task_max_len: int = 12
    # Parallel text instead of a task: "eng-fra" (Tatoeba TSV), "multi30k", or the path of a
    # `source<TAB>target` file. eng-fra and TSV files are split by source into train / val / test.
    pairs: str = ""
    source_lang: str = "en"  # multi30k only: the source and target languages (en, de)
    target_lang: str = "de"
    max_pairs: int = 0  # 0 = all pairs of the file
    group_by_length: bool = False  # seq2seq batches of pairs of like lengths (less padding, faster)
    # Truncated BPTT (recurrent families, Mamba): each pass over the text after the first starts
    # its streams at a random offset, so windows, truncation points and batch neighbours change
    # from pass to pass (seqlab.data.tbptt). Off: every pass repeats the first.
    shift_streams: bool = False

    def __post_init__(self) -> None:
        _require_finite(self, "data")
        _require(not (self.task and self.pairs), "data.pairs", self.pairs,
                 "\"\" when data.task is set (one or the other)")
        _require(self.max_pairs >= 0, "data.max_pairs", self.max_pairs, "an integer of at least 0")
        _require(self.task_examples >= 2, "data.task_examples", self.task_examples, "an integer of at least 2")
        _require(1 <= self.task_min_len <= self.task_max_len, "data.task_min_len", self.task_min_len,
                 f"an integer from 1 to data.task_max_len = {self.task_max_len}")
        _require(bool(self.corpus.strip()), "data.corpus", self.corpus, "a corpus name or path")
        _require(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction,
                 "a number strictly between 0 and 1")
        if self.sequences == "lines":
            _require(self.val_fraction < 0.5, "data.val_fraction", self.val_fraction,
                     "a number below 0.5 with data.sequences = \"lines\" (val and test take one each)")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["char", "byte", "bpe", "wordpiece", "unigram", "word", "hf"] = "char"  # hf: a Hugging Face tokenizer.json (imported)
    vocab_size: int = 512  # bpe: the size the merges are learned up to; word: the most frequent words kept
    unknown_token: bool = False  # char only: map unseen characters to <unk> instead of failing
    # char and word: 256 byte tokens <0x00> … <0xFF> spell in UTF-8 what the vocabulary cannot (an unseen
    # character; an unknown word or spacing word would lose), so every text round-trips exactly. The
    # byte-level kinds need none. Presets whose figures were measured without it set it false.
    byte_fallback: bool = True
    shared: bool = True  # seq2seq only: one vocabulary for both sides; false fits one tokenizer per side

    def __post_init__(self) -> None:
        _require(not (self.unknown_token and self.byte_fallback), "tokenizer.unknown_token", self.unknown_token,
                 "false with tokenizer.byte_fallback = true (an unseen character becomes its bytes, not <unk>); "
                 "set tokenizer.byte_fallback = false to keep <unk>")
        # 256 byte symbols plus at least one merge.
        _require(self.vocab_size >= 257, "tokenizer.vocab_size", self.vocab_size,
                 "an integer of at least 257 (the 256 bytes plus merges)")
        if self.kind == "word" and self.byte_fallback:  # <unk>, TAB, newline, the 256 bytes and one word
            _require(self.vocab_size >= 260, "tokenizer.vocab_size", self.vocab_size,
                     "an integer of at least 260 for a word tokenizer with byte_fallback (3 special tokens, "
                     "256 byte tokens and one word)")
        if self.kind in ("bpe", "wordpiece", "unigram"):  # the tokenizers library reserves room up front
            _require(self.vocab_size <= BPE_MAX_VOCAB_SIZE, "tokenizer.vocab_size", self.vocab_size,
                     f"at most {BPE_MAX_VOCAB_SIZE:,} for a {self.kind} tokenizer")
        if self.kind == "wordpiece":  # each byte as a first and as a continuation piece, plus one learned
            _require(self.vocab_size >= 513, "tokenizer.vocab_size", self.vocab_size,
                     "an integer of at least 513 for a wordpiece tokenizer (512 byte pieces plus learned ones)")


@dataclass(frozen=True)
class ModelSettings:
    """The base of every family's `[model]` settings: a frozen dataclass per family, declared beside
    its model and named in the family registry (`seqlab.families`), which decides from `family`
    which class reads a `[model]` table. Subclasses narrow `family` to their name(s) with a
    `Literal`, add their settings with defaults, and check ranges in `__post_init__`."""

    family: str = ""


@dataclass(frozen=True)
class ModelConfig(ModelSettings):
    """The decoder-only Transformer's settings (`family = "transformer"`): its sizes and one field
    per variant axis (see README's table). The defaults are GPT-2's choices; each preset changes the
    axes its model changed. `EncoderDecoderConfig` adds the encoder's depth."""

    family: Literal["transformer"] = "transformer"
    n_layer: int = 4  # decoder layers (and encoder layers of an encoder-decoder, unless n_encoder_layer)
    n_head: int = 4
    d_model: int = 128
    block_size: int = 64  # the context length in tokens (training windows, KV cache capacity)
    dropout: float = 0.0
    bias: bool = True  # biases in linear layers and LayerNorms (GPT-2 has them; nanoGPT trains without)
    n_kv_head: int = 0  # key/value heads: 0 = n_head (multi-head), 1 = multi-query, else grouped-query
    d_ff: int = 0  # MLP hidden width; 0 = 4·d_model, or about (8/3)·d_model for gated activations
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-5
    norm_position: Literal["pre", "post", "deepnorm"] = "pre"  # deepnorm: post-norm with scaled residuals
    position: Literal["learned", "sinusoidal", "rope", "alibi", "relative", "none"] = "learned"
    rope_base: float = 10000.0  # RoPE's θ base
    relative_buckets: int = 32  # T5's relative-position buckets ...
    relative_max_distance: int = 128  # ... and the distance the last bucket starts at
    activation: Literal["relu", "gelu", "gelu_tanh", "swiglu", "geglu"] = "gelu_tanh"
    parallel_block: bool = False  # attention and MLP side by side on one norm (GPT-J, PaLM)
    tie_embeddings: bool = True  # the output layer is the token embedding
    attention_only: bool = False  # no MLP sublayer: attention and residuals alone (Elhage et al. 2021)
    # Mixture of experts (Shazeer et al. 2017; Switch, Fedus et al. 2021; Mixtral, Jiang et al. 2024):
    # each feed-forward becomes n_experts copies and a router sending every token to experts_per_token
    # of them; 0 = the dense feed-forward. router_aux_loss weighs the load-balancing loss added to
    # the training loss (Switch's α = 0.01; evaluation reports the language-model loss alone).
    n_experts: int = 0
    experts_per_token: int = 2  # top-k routing; only read when n_experts > 0
    router_aux_loss: float = 0.01

    def __post_init__(self) -> None:
        _require_finite(self, "model")
        for name in ("n_layer", "n_head", "d_model", "block_size", "relative_buckets", "relative_max_distance"):
            value = getattr(self, name)
            _require(value >= 1, f"model.{name}", value, "a positive integer")
        for name in ("n_kv_head", "d_ff"):
            value = getattr(self, name)
            _require(value >= 0, f"model.{name}", value, "an integer of at least 0")
        _require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        _require(self.d_model % self.n_head == 0, "model.d_model", self.d_model,
                 f"a multiple of model.n_head = {self.n_head}")
        _require(self.n_head % self.kv_heads == 0, "model.n_kv_head", self.n_kv_head,
                 f"a divisor of model.n_head = {self.n_head} (or 0 for n_head)")
        _require(self.norm_eps > 0, "model.norm_eps", self.norm_eps, "a positive number")
        _require(self.rope_base > 1, "model.rope_base", self.rope_base, "a number above 1")
        _require(self.relative_buckets % 2 == 0 and self.relative_buckets >= 4, "model.relative_buckets",
                 self.relative_buckets, "an even integer of at least 4")
        if self.position == "rope":
            _require(self.head_dim % 2 == 0, "model.position", self.position,
                     f"a scheme other than rope, or an even head width (d_model / n_head = {self.head_dim})")
        if self.position == "sinusoidal":
            _require(self.d_model % 2 == 0, "model.position", self.position,
                     f"a scheme other than sinusoidal, or an even d_model (got {self.d_model})")
        _require(self.n_experts >= 0, "model.n_experts", self.n_experts, "an integer of at least 0 (0 = dense)")
        _require(self.router_aux_loss >= 0, "model.router_aux_loss", self.router_aux_loss, "a number of at least 0")
        if self.n_experts:
            _require(1 <= self.experts_per_token <= self.n_experts, "model.experts_per_token",
                     self.experts_per_token, f"an integer from 1 to model.n_experts = {self.n_experts}")
            _require(not self.attention_only, "model.n_experts", self.n_experts,
                     "0 with model.attention_only = true (there is no MLP to split into experts)")
        else:
            _require(self.experts_per_token >= 1, "model.experts_per_token", self.experts_per_token,
                     "a positive integer")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def gated(self) -> bool:
        return self.activation in ("swiglu", "geglu")

    @property
    def hidden_width(self) -> int:
        """The MLP's hidden width: d_ff, else 4·D, or (2/3)·4·D rounded up to a multiple of 8 for a
        gated MLP, which has three matrices instead of two (as LLaMA sizes it)."""
        if self.d_ff:
            return self.d_ff
        if self.gated:
            return -(-(8 * self.d_model // 3) // 8) * 8
        return 4 * self.d_model

    @property
    def encoder_layers(self) -> int:
        return self.n_layer


@dataclass(frozen=True)
class EncoderDecoderConfig(ModelConfig):
    """The Transformer encoder–decoder's settings (`family = "encoder_decoder"`): the decoder's as
    `ModelConfig`, and the encoder's depth."""

    family: Literal["encoder_decoder"] = "encoder_decoder"  # type: ignore[assignment]
    n_encoder_layer: int = 0  # 0 = n_layer

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.n_encoder_layer >= 0, "model.n_encoder_layer", self.n_encoder_layer,
                 "an integer of at least 0")
        _require(not self.parallel_block, "model.parallel_block", self.parallel_block,
                 "false for an encoder_decoder (its decoder blocks cross-attend in sequence)")

    @property
    def encoder_layers(self) -> int:
        return self.n_encoder_layer or self.n_layer


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 12
    max_steps: int = 2000
    # A wall-time budget (0: none): the fit stops at the end of the first step past this many minutes
    # (compilation, evaluations and checkpoints count; a resumed run counts its earlier fits), and
    # the cosine decay follows the time spent, ending at the budget. max_steps still caps the steps.
    max_minutes: float = 0.0
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    lr_decay_steps: int = 0  # cosine decay ends here; 0 means at max_steps
    weight_decay: float = 0.1  # on matrices only: never on biases, norms or embeddings
    beta1: float = 0.9
    beta2: float = 0.99  # nanoGPT's choice for small char models: the batches are small and noisy
    grad_clip: float = 1.0  # 0 turns clipping off
    grad_accum_steps: int = 1
    eval_every: int | None = None  # unset: follows max_steps (eval_interval); 0: only at the last step
    eval_steps: int = 20
    checkpoint_every: int | None = None  # unset: follows max_steps (checkpoint_interval); 0: only at the last step
    log_every: int = 10  # how often the progress bar reads the loss (each read waits for the device)
    sample_tokens: int = 200  # length of the sample written at each evaluation; 0 for none
    seed: int = 1337  # any integer (seqlab.seeds): initial weights, then the training batches
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # Arithmetic of the forward and backward passes (weights and optimizer stay float32):
    # bfloat16 and float16 run under autocast; float16 (GPU only) adds a gradient scaler. auto:
    # bfloat16 where the hardware computes it natively (CUDA with bf16, CPUs with AVX512-BF16/AMX).
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    # torch.compile the training forward: auto compiles the decoder-only Transformer for runs of at
    # least 500 steps (seqlab.training.precision); true forces it, false never. Falls back to eager,
    # with a warning, where compilation fails.
    compile: bool | Literal["auto"] = "auto"
    threads: int = 0  # CPU threads for torch; 0 picks them (seqlab.training.threads)
    epochs: int = 0  # passes over the training text of the word-vector families; 0: the family's default
    # A run directory to start from: its weights, tokenizer and [model] (an import-hf run too); "" for
    # fresh weights. [finetune] says what of them trains (seqlab.tasks.finetune).
    init_from: str = ""

    def __post_init__(self) -> None:
        _require_finite(self, "train")
        for name in ("batch_size", "max_steps", "grad_accum_steps", "eval_steps", "log_every"):
            value = getattr(self, name)
            _require(value >= 1, f"train.{name}", value, "a positive integer")
        for name in ("warmup_steps", "lr_decay_steps", "eval_every", "checkpoint_every", "sample_tokens", "threads", "epochs"):
            value = getattr(self, name)
            _require(value is None or value >= 0, f"train.{name}", value, "an integer of at least 0")
        _require(self.max_minutes >= 0, "train.max_minutes", self.max_minutes, "a number of at least 0")
        _require(self.lr > 0, "train.lr", self.lr, "a positive number")
        _require(0 <= self.min_lr <= self.lr, "train.min_lr", self.min_lr, f"a number in [0, train.lr = {self.lr}]")
        _require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number of at least 0")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            _require(0 <= value < 1, f"train.{name}", value, "a number in [0, 1)")
        _require(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "a number of at least 0")
        device = self.device
        _require(device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit()),
                 "train.device", device, "one of auto, cpu, cuda, cuda:N, mps")

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps or self.max_steps

    @property
    def budget_seconds(self) -> float | None:
        """`max_minutes` in seconds; None when the run has no time budget."""
        return self.max_minutes * 60.0 if self.max_minutes > 0 else None

    @property
    def eval_interval(self) -> int:
        """`eval_every`, or when unset the roundest step count giving 10 to 20 evaluations of
        `max_steps` (2000 steps: every 200; 300: every 25; fewer than 20 steps: every step)."""
        return self.eval_every if self.eval_every is not None else round_interval(self.max_steps / 10)

    @property
    def checkpoint_interval(self) -> int:
        """`checkpoint_every`, or when unset as `eval_interval` follows `max_steps`."""
        return self.checkpoint_every if self.checkpoint_every is not None else round_interval(self.max_steps / 10)


def round_interval(target: float) -> int:
    """The largest of 1, 2, 2.5, 5 times a power of ten (whole numbers only) at most `target`;
    at least 1. round_interval(200) == 200, round_interval(600) == 500, round_interval(33) == 25."""
    best, scale = 1, 1
    while scale <= target:
        # 2.5 times scale only from 10 up (25, 250, ...): intervals are whole steps
        best = max([best] + [s for s in (scale, 2 * scale, 5 * scale // 2, 5 * scale) if s <= target])
        scale *= 10
    return best


@dataclass(frozen=True)
class SampleConfig:
    max_new_tokens: int = 500
    temperature: float = 0.8  # 0 means greedy
    top_k: int = 200  # 0 turns top-k off
    top_p: float = 1.0  # 1 turns nucleus sampling off
    num_samples: int = 1
    prompt: str = ""  # empty: start from a newline, or token id 0 where the vocabulary has no newline
    stop: str = ""  # stop a sample when this string appears; empty for none
    seed: int = 1337  # any integer (seqlab.seeds)

    def __post_init__(self) -> None:
        _require_finite(self, "sample")
        _require(self.max_new_tokens >= 0, "sample.max_new_tokens", self.max_new_tokens, "an integer of at least 0")
        _require(self.temperature >= 0, "sample.temperature", self.temperature,
                 "a finite number of at least 0 (0 is greedy)")
        _require(self.top_k >= 0, "sample.top_k", self.top_k, "an integer of at least 0")
        _require(0 < self.top_p <= 1, "sample.top_p", self.top_p, "a number in (0, 1]")
        _require(self.num_samples >= 1, "sample.num_samples", self.num_samples, "a positive integer")


@dataclass(frozen=True)
class TaskConfig:
    """What a run learns: next-token prediction (`kind = "lm"`, every other key unread), or a labelled
    task on a neural family's hidden states (seqlab.tasks): one label per sequence (`classify`) or one
    tag per word (`tag`)."""

    kind: Literal["lm", "classify", "tag"] = "lm"
    # A labelled set of seqlab.data.labelled (sentence-polarity, conll2000, ud-english-ewt, brown,
    # mnist1d) or a file: LABEL<TAB>TEXT lines (classify), `word tag` lines with a blank line between
    # sentences (tag), or an .npz of float series x (N, T) or (N, T, F) and integer labels y (N,).
    data: str = ""
    column: Literal["chunks", "pos"] = "chunks"  # conll2000: the tags to learn
    pos_input: bool = False  # conll2000 chunks (or a `word POS tag` file): each word's POS tag is read with it
    fold: int = 0  # sentence-polarity: 0 = the seeded 80/10/10 split, 1 … 10 = that fold of 10-fold cross-validation
    pooling: Literal["last", "mean", "first", "attention"] = "last"  # classify: how states become one vector
    crf: bool = False  # tag: a linear-chain CRF over the tags, decoded by Viterbi
    bidirectional: bool = False  # read right to left too: unmasked attention, or a reverse recurrent stack
    max_len: int = 256  # tokens (or series steps) of an example kept; the rest is cut

    def __post_init__(self) -> None:
        _require(0 <= self.fold <= 10, "task.fold", self.fold, "an integer from 0 (the seeded split) to 10")
        _require(self.max_len >= 1, "task.max_len", self.max_len, "a positive integer")
        if self.kind != "lm":
            _require(bool(self.data.strip()), "task.data", self.data,
                     "a labelled set (sentence-polarity, conll2000, ud-english-ewt, brown, mnist1d) or a file")
        if self.crf:
            _require(self.kind == "tag", "task.crf", self.crf, 'false unless task.kind = "tag"')
        if self.pos_input:
            _require(self.kind == "tag" and self.data not in ("ud-english-ewt", "brown")
                     and (self.data != "conll2000" or self.column == "chunks"), "task.pos_input", self.pos_input,
                     'false unless tagging conll2000\'s chunks (task.column = "chunks") or a `word POS tag` file')


@dataclass(frozen=True)
class FinetuneConfig:
    """What of a run started from `train.init_from` trains: all of it but the `freeze`d parts
    (`method = "full"`), or low-rank adapters on the `targets` (`"lora"`, Hu et al. 2021). Names
    are module paths of the model or their ends, as LoRA's targets: "tok_emb", "blocks.0", "attn.qkv"."""

    method: Literal["full", "lora"] = "full"
    rank: int = 8
    alpha: float = 16.0  # the adapters' scale is alpha / rank
    dropout: float = 0.0  # on the adapters' inputs, in training
    targets: tuple[str, ...] = ("attn.qkv", "attn.out")  # the linear layers (or embeddings) that get adapters (lora)
    freeze: tuple[str, ...] = ()  # parts kept fixed (full)

    def __post_init__(self) -> None:
        _require_finite(self, "finetune")
        _require(self.rank >= 1, "finetune.rank", self.rank, "a positive integer")
        _require(self.alpha > 0, "finetune.alpha", self.alpha, "a positive number")
        _require(0.0 <= self.dropout < 1.0, "finetune.dropout", self.dropout, "a number in [0, 1)")
        if self.method == "lora":
            _require(bool(self.targets), "finetune.targets", list(self.targets),
                     'at least one linear layer to adapt, e.g. ["attn.qkv"]')
            _require(not self.freeze, "finetune.freeze", list(self.freeze),
                     '[] with finetune.method = "lora" (everything but the adapters and the head is fixed)')
        for key in ("targets", "freeze"):
            names = getattr(self, key)
            _require(all(name.strip() for name in names), f"finetune.{key}", list(names),
                     "a list of module names, none empty")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelSettings = field(default_factory=ModelConfig)  # the class `model.family` names
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelSettings,  # the family's own class: see seqlab.config.families
    "train": TrainConfig,
    "sample": SampleConfig,
    "task": TaskConfig,
    "finetune": FinetuneConfig,
}
# Sections written into a config.toml only when they differ from their defaults: a language model
# trained from scratch has nothing to say in them.
OPTIONAL_SECTIONS = ("task", "finetune")
