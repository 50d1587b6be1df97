"""Prompt family: a P5-style T5 recommender and CFP counterfactually-fair prefix prompts (UP5).

Needs the optional extra ``prompt`` (Hugging Face ``transformers``), imported when a model is
fitted; the package imports without it.
"""

from .cfp import CFP
from .p5 import P5Recommender

__all__ = ["P5Recommender", "CFP"]
