"""SpiRit-LM-style expressive tokens: pitch tokens (a VQ of the F0 contour, 12.5 Hz) and style tokens (k-means over a
1-second window's prosody / timbre statistics, 1 Hz), as one fitted, saved and loaded tokenizer.

SpiRit-LM Expressive (Nguyen et al., 2024) interleaves `[Pi..]` pitch tokens (a VQ-VAE over F0, 12.5 Hz) and `[St..]`
style tokens (a fine-tuned speech-property encoder, 1 Hz) with its HuBERT units. Here the pitch codebook is k-means over
windows of `pitch_frames` F0 frames (log2 F0 and voicing per frame) and the style codebook is k-means over
standardised window statistics (log-mel mean / std, F0 level / range / voicing, energy): no pretrained weights, fitted
on the user's own speech with `hf_slm.training.expressive.fit_expressive_encoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_expressive_encoder import F0_REFERENCE, ExpressiveEncoderConfig
from .prosody_multistream_speech_lm import estimate_f0

@dataclass
class ExpressiveEncoderOutput(ModelOutput):
    """Pitch and style tokens of a batch, right-padded with -1.

    Args:
        pitch_codes (`LongTensor` `[B, pitch_steps]`), pitch_mask (`BoolTensor` `[B, pitch_steps]`): 12.5 Hz tokens.
        style_codes (`LongTensor` `[B, style_steps]`), style_mask (`BoolTensor` `[B, style_steps]`): 1 Hz tokens.
    """

    pitch_codes: torch.LongTensor | None = None
    pitch_mask: torch.BoolTensor | None = None
    style_codes: torch.LongTensor | None = None
    style_mask: torch.BoolTensor | None = None


def _pad_codes(sequences: list[torch.Tensor]) -> tuple[torch.LongTensor, torch.BoolTensor]:
    longest = max(len(s) for s in sequences)
    codes = torch.full((len(sequences), longest), -1, dtype=torch.long)
    for i, s in enumerate(sequences):
        codes[i, : len(s)] = s
    return codes, codes >= 0


class ExpressiveEncoderModel(PreTrainedModel):
    r"""
    Audio -> pitch tokens (12.5 Hz) and style tokens (1 Hz); pitch / style tokens -> frame-level F0 and style ids for a
    vocoder. The codebooks and the style standardisation are persistent buffers (saved by `save_pretrained`); fit them
    with `hf_slm.training.expressive.fit_expressive_encoder`.

    Example:

    ```python
    >>> import torch
    >>> from hf_slm.models.speech_lm import ExpressiveEncoderConfig, ExpressiveEncoderModel
    >>> tokenizer = ExpressiveEncoderModel(ExpressiveEncoderConfig(num_pitch_tokens=4, num_style_tokens=2))
    >>> tokenizer.pitch_features(torch.zeros(16000)).shape  # 50 frames -> 13 pitch windows of 4 frames
    torch.Size([13, 8])

    ```
    """

    config_class = ExpressiveEncoderConfig
    config: ExpressiveEncoderConfig
    base_model_prefix = "expressive_encoder"
    main_input_name = "input_values"
    input_modalities = "audio"
    _no_split_modules = []

    def __init__(self, config: ExpressiveEncoderConfig):
        super().__init__(config)
        self.register_buffer("pitch_codebook", torch.zeros(config.num_pitch_tokens, config.pitch_feature_dim))
        self.register_buffer("style_codebook", torch.zeros(config.num_style_tokens, config.style_feature_dim))
        self.register_buffer("style_mean", torch.zeros(config.style_feature_dim))
        self.register_buffer("style_std", torch.ones(config.style_feature_dim))
        self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))
        self.post_init()

    @property
    def dtype(self) -> torch.dtype:
        return self.pitch_codebook.dtype

    @property
    def device(self) -> torch.device:
        return self.pitch_codebook.device

    @torch.no_grad()
    def _init_weights(self, module):
        return  # only buffers: they keep their unfitted (or loaded) values

    # ------------------------------------------------------------------ features
    def prepare_waveforms(self, input_values, attention_mask=None, sampling_rate: int | None = None) -> list[torch.Tensor]:
        """One 1-D float waveform per utterance at `config.sampling_rate` (padding removed)."""
        if isinstance(input_values, (list, tuple)):
            waves = [torch.as_tensor(w, dtype=torch.float32) for w in input_values]
        else:
            values = torch.as_tensor(input_values, dtype=torch.float32)
            if values.dim() == 1:
                values = values[None]
            if values.dim() != 2:
                raise ValueError(f"input_values must be [T] or [B, T] audio, got shape {tuple(values.shape)}")
            lengths = [values.shape[1]] * len(values) if attention_mask is None else attention_mask.sum(-1).tolist()
            waves = [v[: int(n)] for v, n in zip(values, lengths)]
        for i, w in enumerate(waves):
            if w.dim() != 1 or w.numel() == 0:
                raise ValueError(f"utterance {i} must be non-empty mono audio [T], got shape {tuple(w.shape)}")
        rate = self.config.sampling_rate if sampling_rate is None else int(sampling_rate)
        if rate != self.config.sampling_rate:
            waves = [torchaudio.functional.resample(w, rate, self.config.sampling_rate) for w in waves]
        return [w.to(self.device) for w in waves]

    def frame_f0(self, waveform: torch.Tensor) -> torch.FloatTensor:
        """F0 in Hz (0 = unvoiced) at `frame_rate` of one 16 kHz waveform (the pGSLM autocorrelation tracker)."""
        c = self.config
        return estimate_f0(waveform, c.sampling_rate, frame_rate=c.frame_rate, f0_min=c.f0_min, f0_max=c.f0_max)

    def pitch_features(self, waveform: torch.Tensor, f0: torch.Tensor | None = None) -> torch.FloatTensor:
        """`[ceil(frames / pitch_frames), 2 * pitch_frames]`: per window, log2(F0 / 100 Hz) (0 when unvoiced) of each
        frame, then each frame's voicing (0 / 1). The last window is padded with unvoiced frames."""
        f0 = self.frame_f0(waveform) if f0 is None else torch.as_tensor(f0, dtype=torch.float32)
        k = self.config.pitch_frames
        windows = math.ceil(f0.shape[0] / k)
        f0 = torch.nn.functional.pad(f0, (0, windows * k - f0.shape[0])).view(windows, k)
        voiced = (f0 > 0).float()
        log_f0 = torch.where(f0 > 0, torch.log2(f0.clamp(min=1e-3) / F0_REFERENCE), torch.zeros_like(f0))
        return torch.cat([log_f0, voiced], dim=-1)

    def style_features(self, waveform: torch.Tensor, f0: torch.Tensor | None = None) -> torch.FloatTensor:
        """`[ceil(frames / style_frames), style_feature_dim]` raw (unstandardised) statistics of each style window."""
        c = self.config
        f0 = self.frame_f0(waveform) if f0 is None else torch.as_tensor(f0, dtype=torch.float32)
        mel = torchaudio.transforms.MelSpectrogram(
            c.sampling_rate, n_fft=1024, hop_length=c.hop_length, n_mels=c.num_mel_bins, center=True
        ).to(waveform.device)(waveform)
        log_mel = (mel + 1e-6).log().T[: f0.shape[0]]  # [frames, mels]
        if log_mel.shape[0] < f0.shape[0]:
            log_mel = torch.cat([log_mel, log_mel[-1:].expand(f0.shape[0] - log_mel.shape[0], -1)])
        energy = log_mel.exp().sum(-1).clamp(min=1e-8).log()
        rows = []
        for start in range(0, f0.shape[0], c.style_frames):
            window = slice(start, start + c.style_frames)
            m, e, f = log_mel[window], energy[window], f0[window]
            voiced = f > 0
            log_f0 = torch.log2(f[voiced] / F0_REFERENCE) if bool(voiced.any()) else torch.zeros(1)
            rows.append(torch.cat([
                m.mean(0), m.std(0, unbiased=False),
                torch.stack([log_f0.mean(), log_f0.std(unbiased=False), voiced.float().mean(), e.mean(),
                             e.std(unbiased=False)]),
            ]))  # fmt: skip
        return torch.stack(rows)

    # ------------------------------------------------------------------ tokens
    def _require_fitted(self) -> None:
        if not bool(self.is_fitted):
            raise RuntimeError(
                "ExpressiveEncoderModel is not fitted: its pitch / style codebooks are unset. Fit it with "
                "`hf_slm.training.expressive.fit_expressive_encoder(tokenizer, waveforms)` or load a fitted one with "
                "`from_pretrained`."
            )

    @staticmethod
    def _nearest(features: torch.Tensor, codebook: torch.Tensor) -> torch.LongTensor:
        return torch.cdist(features.float(), codebook.float()).argmin(-1)

    def quantize_style(self, features: torch.Tensor) -> torch.LongTensor:
        """Raw style statistics `[N, D]` -> style tokens `[N]` (standardised with the fitted mean / std first)."""
        self._require_fitted()
        return self._nearest((features - self.style_mean) / self.style_std, self.style_codebook)

    @torch.no_grad()
    def encode(self, input_values, attention_mask=None, sampling_rate: int | None = None) -> dict[str, list]:
        """Audio (padded `[B, T]` with a sample mask, or a list of 1-D waveforms) -> `{"pitch": [...], "style":
        [...]}`, one 1-D LongTensor of tokens per utterance, in `[0, num_pitch_tokens)` / `[0, num_style_tokens)`."""
        self._require_fitted()
        pitch, style = [], []
        for waveform in self.prepare_waveforms(input_values, attention_mask, sampling_rate):
            f0 = self.frame_f0(waveform)
            pitch.append(self._nearest(self.pitch_features(waveform, f0), self.pitch_codebook).cpu())
            style.append(self.quantize_style(self.style_features(waveform, f0)).cpu())
        return {"pitch": pitch, "style": style}

    def forward(self, input_values, attention_mask=None, sampling_rate: int | None = None,
                return_dict: bool | None = None) -> ExpressiveEncoderOutput | tuple:  # fmt: skip
        """Padded audio `[B, T]` (+ sample `attention_mask`) -> [`ExpressiveEncoderOutput`] (codes padded with -1)."""
        tokens = self.encode(input_values, attention_mask, sampling_rate)
        pitch_codes, pitch_mask = _pad_codes(tokens["pitch"])
        style_codes, style_mask = _pad_codes(tokens["style"])
        out = ExpressiveEncoderOutput(pitch_codes=pitch_codes.to(self.device), pitch_mask=pitch_mask.to(self.device),
                                        style_codes=style_codes.to(self.device), style_mask=style_mask.to(self.device))  # fmt: skip
        return out if (return_dict is None or return_dict) else out.to_tuple()

    def pitch_to_f0(self, pitch_tokens, frame_index=None) -> torch.FloatTensor:
        """Pitch tokens -> F0 in Hz (0 = unvoiced) from the codebook.

        Args:
            pitch_tokens (`LongTensor` `[N]`): either one token per pitch window (`frame_index=None`: returns the
                `[N * pitch_frames]` frame contour), or the pitch token in force at each unit frame (what
                `SpeechLMProcessor.deinterleave` returns) with `frame_index` `[N]` the frame number of each unit,
                whose position inside its pitch window picks the codebook entry's frame.
        """
        self._require_fitted()
        tokens = torch.as_tensor(pitch_tokens, device=self.device).long().flatten()
        k = self.config.pitch_frames
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.num_pitch_tokens):
            raise ValueError(f"pitch tokens must lie in [0, {self.config.num_pitch_tokens}), got {tokens.tolist()[:8]}...")
        entries = self.pitch_codebook[tokens]  # [N, 2k]
        log_f0, voicing = entries[:, :k], entries[:, k:]
        # centroids average voiced log2 F0 with the zeros of unvoiced frames: divide by the voicing fraction
        f0 = F0_REFERENCE * torch.exp2(log_f0 / voicing.clamp(min=1e-3))
        f0 = torch.where(voicing >= 0.5, f0, torch.zeros_like(f0))
        if frame_index is None:
            return f0.flatten()
        frame_index = torch.as_tensor(frame_index, device=self.device).long().flatten()
        if frame_index.shape != tokens.shape:
            raise ValueError(f"frame_index must give one frame per token, got {tuple(frame_index.shape)} vs {tuple(tokens.shape)}")
        return f0.gather(1, (frame_index % k)[:, None])[:, 0]


__all__ = ["ExpressiveEncoderModel", "ExpressiveEncoderOutput"]
