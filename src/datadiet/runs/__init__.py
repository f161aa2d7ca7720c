"""Runs: the one run identity, score runs, resumable sweeps, workspaces and the one preset table."""
from .identity import digest_ids, identity
from .presets import PRESETS, Setting, get_preset, standard_scores
from .scoring import ScoreConfig, run_scores, score_model, score_tables
from .sweep import Execution, RunSpec, SweepOutcome, Task, load_results, run_sweep, task_for
from .workspace import Workspace

__all__ = ["Execution", "PRESETS", "RunSpec", "ScoreConfig", "Setting", "SweepOutcome", "Task", "Workspace", "digest_ids",
           "get_preset", "identity", "load_results", "run_scores", "run_sweep", "score_model", "score_tables",
           "standard_scores", "task_for"]
