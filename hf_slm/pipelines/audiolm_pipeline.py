"""`AudioLMPipeline`: AudioLM's hierarchy (Borsos et al., 2022) as one hosted variant.

    audio -> unit_encoder (semantic units) -> semantic_lm continues them
          -> coarse_lm: codebooks 0..Q1-1, prefixed by all the units, after the prompt's own codes (acoustic prompt)
          -> fine_lm: codebooks Q1..Q-1, prefixed by the coarse codes, window by window
          -> codec decoder

Components (one subfolder each, as every variant)::

    pipeline_index.json   {"_class_name": "AudioLMPipeline", "feature_extractor": [...], "unit_encoder": [...], ...}
    feature_extractor/    raw audio at the codec's rate (do_normalize=False)
    unit_encoder/         UnitEncoderModel (the semantic tokenizer)
    semantic_lm/          SpeechLMForCausalLM over its units
    coarse_lm/ fine_lm/   AcousticLMForCausalLM (condition="units" / "codes")
    codec/                CodecModel / RVQCodecModel / MelRVQCodecModel: tokenises the prompt, decodes the result
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .pipeline_utils import AUDIOLM_COMPONENTS, PipelineLoadError, PipelineMixin


@dataclass
class AudioLMPipelineOutput:
    """What `AudioLMPipeline.continue_speech` returns, one entry per utterance: the new semantic `units` (`[T_u]`),
    the new codec `codes` (`[Q, T]`), the prompt's own units and codes, and the waveforms (prompt + continuation)."""

    units: list[torch.Tensor]
    codes: list[torch.Tensor]
    waveforms: list[np.ndarray] = field(default_factory=list)
    sampling_rate: int | None = None
    prompt_units: list[torch.Tensor] | None = None
    prompt_codes: list[torch.Tensor] | None = None


def _close(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), 1.0)


def check_audiolm_components(feature_extractor, unit_encoder, semantic_lm, coarse_lm, fine_lm, codec) -> None:
    """Refuse components that disagree: sampling rates, unit vocabulary and frame rate, codebook split, codebook size
    and frame rate. Each `PipelineLoadError` names both components and both values."""

    def refuse(what: str):
        raise PipelineLoadError(f"incompatible AudioLM components: {what}")

    codec_out = codec.config.produces
    rate = int(codec.config.sampling_rate)
    for name, component in (("feature_extractor", feature_extractor), ("unit_encoder", unit_encoder.config)):
        if not _close(component.sampling_rate, rate):
            refuse(f"{name} works at {component.sampling_rate} Hz but the codec at {rate} Hz")
    if getattr(feature_extractor, "do_normalize", False):
        refuse("feature_extractor has do_normalize=True, but the codec needs the raw samples (the unit encoder's "
               "input is standardised by the pipeline)")  # fmt: skip
    num_units = unit_encoder.config.produces["units.num_units"]
    if semantic_lm.config.num_units != num_units:
        refuse(f"unit_encoder produces {num_units} units but semantic_lm models {semantic_lm.config.num_units}")
    coarse, fine = coarse_lm.config, fine_lm.config
    if coarse.condition != "units" or coarse.first_codebook != 0:
        refuse(f"coarse_lm must be conditioned on units and predict from codebook 0, got condition="
               f"{coarse.condition!r}, first_codebook={coarse.first_codebook}")  # fmt: skip
    if coarse.num_units != num_units:
        refuse(f"unit_encoder produces {num_units} units but coarse_lm is conditioned on {coarse.num_units}")
    unit_rate = unit_encoder.config.produces["units.frame_rate"]
    if coarse.unit_frame_rate and not _close(coarse.unit_frame_rate, unit_rate):
        refuse(f"unit_encoder produces units at {unit_rate} Hz but coarse_lm was trained on {coarse.unit_frame_rate} "
               "Hz")
    if fine.condition != "codes" or fine.first_codebook != coarse.num_codebooks:
        refuse(f"fine_lm must be conditioned on the coarse codebooks 0..{coarse.num_codebooks - 1} (condition='codes', "
               f"first_codebook={coarse.num_codebooks}), got condition={fine.condition!r}, "
               f"first_codebook={fine.first_codebook}")  # fmt: skip
    if fine.last_codebook != codec_out["codes.num_codebooks"]:
        refuse(f"coarse_lm + fine_lm predict {coarse.num_codebooks} + {fine.num_codebooks} = {fine.last_codebook} "
               f"codebooks but the codec has {codec_out['codes.num_codebooks']}")  # fmt: skip
    for name, config in (("coarse_lm", coarse), ("fine_lm", fine)):
        if config.codebook_size != codec_out["codes.codebook_size"]:
            refuse(f"codec has {codec_out['codes.codebook_size']} codes per codebook but {name} {config.codebook_size}")
        if config.frame_rate and not _close(config.frame_rate, codec_out["codes.frame_rate"]):
            refuse(f"codec makes {codec_out['codes.frame_rate']} frames/s but {name} was trained on "
                   f"{config.frame_rate}")


class AudioLMPipeline(PipelineMixin):
    """Speech continuation in the prompt's voice, AudioLM's way: semantic units carry the content, a coarse and a fine
    acoustic LM turn them into codec codes that start from the prompt's.

    Args:
        feature_extractor: `SpeechFeatureExtractor` at the codec's rate with `do_normalize=False`.
        unit_encoder: `UnitEncoderModel` (semantic tokenizer; fed each utterance standardised).
        semantic_lm: `SpeechLMForCausalLM` over its units.
        coarse_lm: `AcousticLMForCausalLM` with `condition="units"`, codebooks `0..Q1-1`.
        fine_lm: `AcousticLMForCausalLM` with `condition="codes"`, codebooks `Q1..Q-1`.
        codec: `RVQCodecModel`, `MelRVQCodecModel` or `CodecModel` with `Q` codebooks.

    Components that disagree (rates, unit vocabulary, codebook split / size) raise `PipelineLoadError` here, so both
    when built and when loaded.

    >>> from hf_slm import AudioLMPipeline
    >>> pipe = AudioLMPipeline.from_pretrained("runs/audiolm_tiny/variant")  # doctest: +SKIP
    >>> out = pipe.continue_speech("prompt.wav", max_new_tokens=100)  # doctest: +SKIP
    """

    component_names = AUDIOLM_COMPONENTS

    def __init__(self, feature_extractor, unit_encoder, semantic_lm, coarse_lm, fine_lm, codec):
        check_audiolm_components(feature_extractor, unit_encoder, semantic_lm, coarse_lm, fine_lm, codec)
        self.register_modules(feature_extractor=feature_extractor, unit_encoder=unit_encoder, semantic_lm=semantic_lm,
                              coarse_lm=coarse_lm, fine_lm=fine_lm, codec=codec)  # fmt: skip

    @property
    def sampling_rate(self) -> int:
        return int(self.codec.config.sampling_rate)

    @property
    def num_coarse_codebooks(self) -> int:
        return self.coarse_lm.config.num_codebooks

    # ------------------------------------------------------------------ tokenisers
    @torch.no_grad()
    def encode(self, audio, sampling_rate: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Audio (one item or a list) -> `(units, codes)`: per utterance, semantic units `[T_u]` and codec codes
        `[Q, T]`, padding removed."""
        inputs = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
        values, mask = inputs["input_values"], inputs["attention_mask"]
        device = next(self.codec.parameters()).device
        codes = self.codec.encode(input_values=values.to(device), attention_mask=mask.to(device)).unpadded()
        weights = mask.to(values.dtype)
        count = weights.sum(-1, keepdim=True).clamp(min=1)
        mean = (values * weights).sum(-1, keepdim=True) / count
        var = (((values - mean) * weights) ** 2).sum(-1, keepdim=True) / count
        standardised = (values - mean) / torch.sqrt(var + 1e-7) * weights  # what do_normalize=True gives the encoder
        device = next(self.unit_encoder.parameters(), torch.empty(0)).device
        units = self.unit_encoder.encode(input_values=standardised.to(device), attention_mask=mask.to(device))
        return [u.cpu() for u in units.unpadded()], [c.cpu() for c in codes]

    @torch.no_grad()
    def decode(self, codes) -> list[np.ndarray]:
        """Codec codes (`[Q, T]` per utterance) -> float32 waveforms at `sampling_rate`."""
        codes = [codes] if torch.is_tensor(codes) and codes.dim() == 2 else list(codes)
        out = []
        device = next(self.codec.parameters()).device
        for c in codes:
            decoded = self.codec.decode(torch.as_tensor(c).long()[None].to(device))
            out.append(decoded.waveform[0, : int(decoded.waveform_lengths[0])].float().cpu().numpy())
        return out

    def resynthesize(self, audio, sampling_rate: int | None = None) -> AudioLMPipelineOutput:
        """Audio -> units and codes -> the codec's decoding of the codes (what the codes keep of the signal)."""
        units, codes = self.encode(audio, sampling_rate=sampling_rate)
        return AudioLMPipelineOutput(units=units, codes=codes, waveforms=self.decode(codes),
                                     sampling_rate=self.sampling_rate)  # fmt: skip

    # ------------------------------------------------------------------ the three stages
    def fine_window(self) -> int:
        """Frames the fine model reads at once: as many as its positions hold (AudioLM: 3 s windows)."""
        config = self.fine_lm.config
        limit = getattr(config.text_config, "max_position_embeddings", None) or 4096
        return max(1, (limit - 2) // (config.first_codebook + config.num_codebooks))

    def generate_fine(self, coarse: torch.Tensor, prompt_fine: torch.Tensor | None = None, **sampling) -> torch.Tensor:
        """Fine codebooks `[Q - Q1, T]` for coarse codes `[Q1, T]`, in non-overlapping windows of `fine_window()`
        frames; the first `prompt_fine.shape[-1]` frames are the prompt's own, kept."""
        num_fine = self.fine_lm.config.num_codebooks
        known = torch.zeros((num_fine, 0), dtype=torch.long) if prompt_fine is None else prompt_fine.long().cpu()
        pieces, frames, window = [known], coarse.shape[-1], self.fine_window()
        for start in range(0, frames, window):
            end = min(start + window, frames)
            if end <= known.shape[-1]:
                continue
            prompt = known[:, start:]
            frames_new = end - start - prompt.shape[-1]
            new = self.fine_lm.generate(coarse[None, :, start:end], prompt[None], max_new_frames=frames_new, **sampling)
            pieces.append(new[0].cpu())
        return torch.cat(pieces, dim=-1)

    @torch.no_grad()
    def continue_speech(
        self,
        audio,
        sampling_rate: int | None = None,
        max_new_tokens: int = 100,
        do_sample: bool = True,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        acoustic_temperature: float | None = None,
        seed: int | None = None,
        vocode: bool = True,
        min_new_tokens: int | None = None,
    ) -> AudioLMPipelineOutput:
        """Continue speech in the prompt's voice: `max_new_tokens` new semantic units (exactly: end-of-sequence is
        not allowed before), then their duration in codec frames (`round(units x codec rate / unit rate)`) of coarse
        and fine codes after the prompt's own, then the codec decodes prompt + continuation.

        ``acoustic_temperature`` (default: ``temperature``) samples the coarse and fine stages. ``min_new_tokens``
        (`SpeechLMPipeline`'s argument) is always met: every continuation has ``max_new_tokens`` units.
        """
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if seed is not None:
            torch.manual_seed(seed)
        prompt_units, prompt_codes = self.encode(audio, sampling_rate=sampling_rate)
        sampling = {"do_sample": do_sample, "top_k": top_k, "top_p": top_p}
        acoustic = {**sampling, "temperature": temperature if acoustic_temperature is None else acoustic_temperature}
        ratio = self.codec.config.frame_rate / self.unit_encoder.config.frame_rate
        q1 = self.num_coarse_codebooks
        new_units, new_codes = [], []
        for units, codes in zip(prompt_units, prompt_codes):
            units_next = self.semantic_lm.generate_units([units], max_new_tokens=max_new_tokens,
                                                         min_new_tokens=max_new_tokens, temperature=temperature,
                                                         **sampling)[0].cpu()  # fmt: skip
            frames = max(1, round(len(units_next) * ratio))
            condition = torch.cat([units, units_next])[None]
            coarse_next = self.coarse_lm.generate(condition, codes[None, :q1], max_new_frames=frames, **acoustic)[0]
            coarse = torch.cat([codes[:q1], coarse_next.cpu()], dim=-1)
            fine = self.generate_fine(coarse, codes[q1:], **acoustic)
            new_units.append(units_next)
            new_codes.append(torch.cat([coarse, fine], dim=0)[:, codes.shape[-1] :])
        waveforms = []
        if vocode:
            waveforms = self.decode([torch.cat([p, n], dim=-1) for p, n in zip(prompt_codes, new_codes)])
        return AudioLMPipelineOutput(units=new_units, codes=new_codes, waveforms=waveforms,
                                     sampling_rate=self.sampling_rate, prompt_units=prompt_units,
                                     prompt_codes=prompt_codes)  # fmt: skip

    def __repr__(self) -> str:
        parts = [f"  {name}: {type(c).__name__}" for name, c in self.components.items()]
        return f"{type(self).__name__}(\n" + "\n".join(parts) + "\n)"


__all__ = ["AudioLMPipeline", "AudioLMPipelineOutput", "check_audiolm_components"]
