"""`AdapterTrainer`: a `Trainer` whose checkpoints save a PEFT adapter the way a saved variant does.

The `Trainer` saves a `PeftModel` with PEFT's ``save_embedding_layers="auto"``, which, for a language model whose
vocabulary `add_task_tokens` extended, copies the whole resized embedding into every checkpoint and warns that it
did so. When the adapter already holds the added rows (`adapter_holds_embeddings`) that copy is redundant: the
loader extends the base first. Checkpoints then go through `save_adapter`, like the variant itself.
"""

from __future__ import annotations

import os

import torch
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME

from ..pipelines.adapters import adapter_holds_embeddings, save_adapter


class AdapterTrainer(Trainer):
    """`Trainer` for a `PeftModel`; any other model is saved as the `Trainer` saves it."""

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        from peft import PeftModel

        if not (isinstance(self.model, PeftModel) and adapter_holds_embeddings(self.model)):
            return super()._save(output_dir, state_dict)
        if not self.args.should_save:
            return None
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        save_adapter(self.model, output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
        return None


__all__ = ["AdapterTrainer"]
