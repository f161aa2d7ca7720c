"""Per-example scores: pure functions, one registry, score files and score runs."""
from .functions import el2n, forgetting, grand, input_norm, random_score, score1, score2, score3
from .gradnorm import UnsupportedLayerError, per_example_grad_norms
from .registry import SCORES, score_spec
from .store import ScoreFileError, ScoreTable, load_scores, save_scores

__all__ = ["SCORES", "ScoreFileError", "ScoreTable", "UnsupportedLayerError", "el2n", "forgetting", "grand",
           "input_norm", "load_scores", "per_example_grad_norms", "random_score", "save_scores", "score1",
           "score2", "score3", "score_spec"]
