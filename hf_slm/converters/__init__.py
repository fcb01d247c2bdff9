"""Converters from published speech-LM checkpoint formats to hf_slm component folders (safetensors).

| function | source | writes |
|---|---|---|
| [`convert_kmeans`] | textlesslib / fairseq joblib k-means + a transformers SSL encoder | `UnitEncoderModel` |
| [`convert_unit_hifigan`] | speech-resynthesis / fairseq / textlesslib unit HiFi-GAN | `UnitHifiGanVocoder` |
| [`convert_seamless_vocoder`] | SeamlessM4T (v1 / v2) code HiFi-GAN | `UnitHifiGanVocoder` |
| [`convert_slamkit_lm`] | slamkit `UnitLM` / TWIST unit LMs | `SpeechLMForCausalLM` |
| [`assemble_variant`] | component folders | a checked pipeline variant |

See docs/converters.md. `hf-slm convert` (`hf_slm/cli/convert.py`) is their command line.
"""

from .kmeans import convert_kmeans, load_kmeans_centroids
from .seamless import convert_seamless_vocoder, seamless_speaker_id
from .slamkit import convert_slamkit_lm
from .unit_hifigan import convert_unit_hifigan
from .variant import assemble_variant

__all__ = [
    "assemble_variant",
    "convert_kmeans",
    "convert_seamless_vocoder",
    "convert_slamkit_lm",
    "convert_unit_hifigan",
    "load_kmeans_centroids",
    "seamless_speaker_id",
]
