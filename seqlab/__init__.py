"""seqlab: sequence models from Shannon's n-grams to GPT, each a tool to train, sample, evaluate,
compare and look inside.

    import seqlab
    run_dir = seqlab.train("shakespeare-char", overrides=["train.max_steps=200"])
    model, tokenizer = seqlab.load(run_dir)
    print(seqlab.evaluate(run_dir)["bits_per_char"])
"""

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load", "train"]


def __getattr__(name: str):
    # The API pulls in torch; importing `seqlab` alone (e.g. for the config) stays light.
    if name in ("train", "load", "evaluate"):
        from seqlab import api
        return getattr(api, name)
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")
