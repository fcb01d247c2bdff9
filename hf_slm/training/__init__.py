"""Training helpers around the HF `Trainer` (which stays the loop): collators, the GAN trainer for vocoders."""

from .collators import CausalLMCollator

__all__ = ["CausalLMCollator"]
