"""Embedding recommenders trained by BPR, and adversarial training against poisoning.

:class:`BPRMF` and :class:`LightGCN` are the backbones; :class:`APR` and :class:`PamaCF` add
adversarial training on either (``backbone="mf"`` or ``"lightgcn"``) through one mechanism whose
magnitude rule is a parameter.
"""

from .adversarial import APR, PamaCF
from .bprmf import BPRMF
from .lightgcn import LightGCN

__all__ = ["BPRMF", "LightGCN", "APR", "PamaCF"]
