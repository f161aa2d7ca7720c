"""Per-example scores: pure functions, one registry with the score-label type, and score files."""
from .functions import el2n, forgetting, grand, input_norm, random_score, score1, score2, score3, self_confidence
from .gradnorm import UnsupportedLayerError, per_example_grad_norms
from .registry import SCORES, ScoreLabel, score_spec
from .store import ScoreFileError, ScoreTable, load_scores, save_scores

__all__ = ["SCORES", "ScoreFileError", "ScoreLabel", "ScoreTable", "UnsupportedLayerError", "el2n", "forgetting",
           "grand", "input_norm", "load_scores", "per_example_grad_norms", "random_score", "save_scores", "score1",
           "score2", "score3", "score_spec", "self_confidence"]
