"""Experiments: resumable sweeps of training runs and the papers' reproduction presets."""
from .reproduce import PRESETS, Preset, get_preset, reproduce
from .sweep import RunSpec, SweepOutcome, Task, load_results, run_sweep

__all__ = ["PRESETS", "Preset", "RunSpec", "SweepOutcome", "Task", "get_preset", "load_results", "reproduce",
           "run_sweep"]
