"""hf_slm: Speech Language Models (speech tokenizer -> unit language model -> vocoder) for the Hugging Face stack.

Importing the package registers every component with the transformers Auto classes (see ``_registration``).
"""

from pathlib import Path

from . import _registration  # noqa: F401  (registers the Auto classes)
from .models import *  # noqa: F401,F403
from .pipelines import PipelineLoadError, SpeechLMPipeline, SpeechPipelineOutput, SpokenChatPipeline  # noqa: F401

__version__ = "0.1.0"

#: Local path of the embedded default pipeline variant shipped inside the package (no network needed).
DEFAULT_PIPELINE = str(Path(__file__).resolve().parent / "default_pipeline")
#: The embedded TWIST-style variant (`"twist-default"`): its own text tokenizer and warm-started LM; the feature
#: extractor, speech tokenizer and vocoder are references to `DEFAULT_PIPELINE`.
DEFAULT_TWIST_PIPELINE = str(Path(__file__).resolve().parent / "default_twist_pipeline")
#: The embedded instruct variant (`"instruct-default"`): only a LoRA adapter (`adapter/`) over `DEFAULT_TWIST_PIPELINE`,
#: whose components it references (`SpokenChatPipeline.from_pretrained("instruct-default")`).
DEFAULT_INSTRUCT_PIPELINE = str(Path(__file__).resolve().parent / "default_instruct_pipeline")
