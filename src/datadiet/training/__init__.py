"""Training: the step-budget engine, its batch stream, evaluation, checkpoints and correctness logs."""
from .accounting import Cost, flops_per_example
from .checkpoints import available_steps, load_checkpoint, restore, save_checkpoint
from .correctness import CorrectnessLog
from .engine import StartFrom, TrainResult, ensure_checkpoints, init_model, lr_at, lr_at_progress, train
from .evaluate import Predictions, classification_error, correct_per_example, evaluate, predict
from .placement import place_model, resolve_device, to_layout
from .stream import BatchStream, DynamicStream, seed_streams

__all__ = ["BatchStream", "CorrectnessLog", "Cost", "DynamicStream", "Predictions", "StartFrom", "TrainResult",
           "available_steps", "classification_error", "correct_per_example", "ensure_checkpoints", "evaluate",
           "flops_per_example", "init_model", "load_checkpoint", "lr_at", "lr_at_progress", "place_model", "predict",
           "resolve_device", "restore", "save_checkpoint", "seed_streams", "to_layout", "train"]
