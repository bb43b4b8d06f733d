"""Tasks on top of the language models: classification and tagging heads on any neural family, runs
started from another run's weights (`train.init_from`), frozen parts and LoRA adapters.

    seqlab train my-task.toml --out runs/mr          # [task] kind = "classify", data = "sentence-polarity"
    seqlab eval runs/mr --json                        # accuracy, macro_f1 (and chunk f1 for tagging)
    seqlab predict runs/mr --text "a gripping film"   # the label and its probability
    seqlab merge runs/mr-lora --out runs/mr-merged    # adapters folded into the base weights

See docs/tasks.md. `seqlab.tasks.data` reads and batches labelled examples, `seqlab.tasks.model`
holds the heads, `seqlab.tasks.finetune` starts from a base run, `seqlab.tasks.run` trains, loads
and merges runs, `seqlab.tasks.evaluate` scores and predicts.
"""
