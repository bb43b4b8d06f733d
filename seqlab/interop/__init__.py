"""Interoperability with Hugging Face: pretrained GPT-2 and LLaMA weights in and out of seqlab.

    model, tokenizer = from_hf("path/to/save_pretrained_folder")
    to_hf(model, "out/", tokenizer)

`hf` reads and writes the folders (JSON and safetensors only, no `transformers` needed); `gpt2` and
`llama` hold the name and layout mappings, each with its own config translation; `tensor_map` is the
shared description of one parameter's mapping; `runs` turns folders into seqlab run directories and
back (`seqlab import-hf`, `seqlab export-hf`).
"""

from seqlab.interop.hf import from_hf, to_hf
from seqlab.interop.runs import export_hf_run, import_hf_run

__all__ = ["export_hf_run", "from_hf", "import_hf_run", "to_hf"]
