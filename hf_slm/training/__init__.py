"""Training helpers around the HF `Trainer` (which stays the loop): collators, the GAN trainer for vocoders."""

from ..utils import widen_to_umask
from .adapter_trainer import AdapterTrainer
from .augmentation import SpeechAugmentation
from .callbacks import ReadableCheckpoints, ThreadSchedule, WallClockLimit
from .checkpoints import is_complete_checkpoint, last_complete_checkpoint
from .collators import CausalLMCollator
from .dialogue import DialogueStreamsCollator, DialogueUnitsCollator, duplex_lm, generate_duplex
from .gan_trainer import VocoderGanTrainer
from .launch import (
    LaunchError,
    completed_step,
    data_parallel_defaults,
    end_distributed,
    finished_results,
    log_launch,
    require_single_process,
    resumable_interrupt,
    train_resuming,
)
from .packing import PackedSequenceCollator, SequencePacker, pack_dataset, pack_sequences
from .speech_llm import SpeechLLMCollator, set_training_stage
from .vocoder_collator import UnitVocoderCollator
from .word_lm import fit_ngram_lm, fit_phone_lm, fit_word_lm

__all__ = [
    "AdapterTrainer",
    "LaunchError",
    "CausalLMCollator",
    "DialogueStreamsCollator",
    "DialogueUnitsCollator",
    "PackedSequenceCollator",
    "ReadableCheckpoints",
    "SequencePacker",
    "SpeechAugmentation",
    "SpeechLLMCollator",
    "ThreadSchedule",
    "UnitVocoderCollator",
    "VocoderGanTrainer",
    "WallClockLimit",
    "completed_step",
    "data_parallel_defaults",
    "duplex_lm",
    "end_distributed",
    "finished_results",
    "fit_ngram_lm",
    "fit_phone_lm",
    "fit_word_lm",
    "generate_duplex",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "log_launch",
    "pack_dataset",
    "pack_sequences",
    "require_single_process",
    "resumable_interrupt",
    "set_training_stage",
    "train_resuming",
    "widen_to_umask",
]
