"""Presets: TOML configs shipped with the package, chosen by file name (`seqlab train NAME`)."""
