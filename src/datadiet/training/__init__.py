"""Training: the step-budget engine, checkpoints and correctness logs."""
from .checkpoints import available_steps, load_checkpoint, restore, save_checkpoint
from .correctness import CorrectnessLog
from .engine import (StartFrom, TrainResult, ensure_checkpoints, evaluate, init_model, lr_at, resolve_device,
                     train)

__all__ = ["CorrectnessLog", "StartFrom", "TrainResult", "available_steps", "ensure_checkpoints", "evaluate",
           "init_model", "load_checkpoint", "lr_at", "resolve_device", "restore", "save_checkpoint", "train"]
