"""Variational autoencoders: MultVAE and AdvXMultVAE (adversarial removal of protected attributes).

AdvXMultVAE with a single attribute is Adv-MultVAE (Ganhör et al. 2022); there is no separate
class for it.
"""

from .multvae import AdvXMultVAE, MultVAE

__all__ = ["MultVAE", "AdvXMultVAE"]
