"""dGSLM's dialogue LM: two weight-sharing towers over the unit streams of two speakers, with cross-attention."""

from .configuration_dialogue_lm import DialogueLMConfig
from .modeling_dialogue_lm import DialogueLMForCausalLM, DialogueLMOutput, DialogueLMPreTrainedModel, edge_targets

__all__ = ["DialogueLMConfig", "DialogueLMForCausalLM", "DialogueLMOutput", "DialogueLMPreTrainedModel", "edge_targets"]
