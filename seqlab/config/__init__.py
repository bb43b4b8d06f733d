"""Configuration: frozen dataclasses per TOML section, presets by name, dotted overrides."""

from seqlab.config.load import (
                                config_to_dict,
                                config_to_toml,
                                load_config,
                                override,
                                parse_overrides,
                                preset_names,
                                with_section,
)
from seqlab.config.schema import (
                                Config,
                                DataConfig,
                                FinetuneConfig,
                                ModelConfig,
                                SampleConfig,
                                TaskConfig,
                                TokenizerConfig,
                                TrainConfig,
)

__all__ = [
    "Config", "DataConfig", "FinetuneConfig", "ModelConfig", "SampleConfig", "TaskConfig", "TokenizerConfig",
    "TrainConfig",
    "config_to_dict", "config_to_toml", "load_config", "override", "parse_overrides", "preset_names",
    "with_section",
]
