"""Presentation: tidy tables, figures, Markdown sections and the HTML made from them.

Imports only from below (``io``, ``config``, ``stats``); it never reads a results folder itself.
"""
from .markdown import Section, markdown_table, markdown_to_html, write_section
from .pruning import write_pruning_report
from .tables import compare_to_random, curve_table, flatten_results

__all__ = ["Section", "compare_to_random", "curve_table", "flatten_results", "markdown_table", "markdown_to_html",
           "write_pruning_report", "write_section"]
