"""Training helpers around the HF `Trainer` (which stays the loop): collators, the GAN trainer for vocoders."""

from .collators import CausalLMCollator
from .gan_trainer import VocoderGanTrainer
from .vocoder_collator import UnitVocoderCollator

__all__ = ["CausalLMCollator", "UnitVocoderCollator", "VocoderGanTrainer"]
