"""Training helpers around the HF `Trainer` (which stays the loop): collators, the GAN trainer for vocoders."""

from .callbacks import WallClockLimit
from .checkpoints import is_complete_checkpoint, last_complete_checkpoint
from .collators import CausalLMCollator
from .gan_trainer import VocoderGanTrainer
from .packing import PackedSequenceCollator, SequencePacker, pack_dataset, pack_sequences
from .vocoder_collator import UnitVocoderCollator

__all__ = [
    "CausalLMCollator",
    "PackedSequenceCollator",
    "SequencePacker",
    "UnitVocoderCollator",
    "VocoderGanTrainer",
    "WallClockLimit",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "pack_dataset",
    "pack_sequences",
]
