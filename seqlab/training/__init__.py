"""Training: the Trainer loop and its callbacks, AdamW and its schedule, checkpoints, metrics, devices."""

from seqlab.data.batches import BatchSource
from seqlab.training import distributed, precision, threads
from seqlab.training.callbacks import (
    Callback,
    CheckpointCallback,
    LossPlotCallback,
    MetricsCallback,
    SampleCallback,
    default_callbacks,
)
from seqlab.training.checkpoint import (
    latest_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
    unwrap,
)
from seqlab.training.device import resolve_device
from seqlab.training.optim import build_optimizer, learning_rate, param_groups
from seqlab.training.trainer import Trainer, TrainResult

__all__ = [
    "BatchSource", "Callback", "CheckpointCallback", "LossPlotCallback", "MetricsCallback", "SampleCallback",
    "TrainResult", "Trainer", "build_optimizer", "default_callbacks", "latest_checkpoint", "learning_rate",
    "load_weights", "param_groups", "resolve_device", "save_checkpoint", "save_weights", "unwrap",
]
