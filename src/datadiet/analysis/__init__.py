"""Analysis: tidy tables, statistics against random, figures and the report of a results folder."""
from .report import build_report
from .tables import compare_to_random, curve_table, spearman_matrix

__all__ = ["build_report", "compare_to_random", "curve_table", "spearman_matrix"]
