"""A codec with no network: residual VQ of log-mel frames (codebooks fitted by k-means), inverted by Griffin-Lim.

Encoding and decoding are signal processing plus nearest-neighbour search, so the codec is fitted in minutes on a CPU
(`hf_slm.training.kmeans.fit_mel_rvq_codec`) and keeps what a mel keeps: the spectral envelope and, at 80 bins, the low
harmonics, i.e. the voice. What it loses is phase (Griffin-Lim's artefacts), which a neural decoder would restore.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from .audio_rvq_codec import LOG_MEL_FLOOR, CodecLogMel
from .configuration_codec import MelRVQCodecConfig
from .modeling_codec import CodecEncoderOutput, CodecModelMixin, check_audio, check_codes, lengths_to_mask


class MelRVQCodecModel(CodecModelMixin, PreTrainedModel):
    r"""
    Log-mel analysis -> residual vector quantization (greedy, level by level) -> codes; codes -> summed codebook
    vectors -> log-mel -> least-squares linear magnitude (as torchaudio's `InverseMelScale`) -> Griffin-Lim.

    The same interface as [`RVQCodecModel`] and [`CodecModel`]:
    - `encode(input_values [B, S], attention_mask) -> CodecEncoderOutput(codes [B, Q, T], codes_mask [B, T],
      latents = the log-mel [B, T, n_mels])`, `T = ceil(S / hop_length)`;
    - `decode(codes [B, q, T], codes_mask) -> CodecDecoderOutput(waveform [B, T * hop_length], waveform_lengths)`,
      `q <= num_codebooks` levels decoding at a lower bitrate;
    - `forward(input_values=...)` autoencodes; `forward(input_ids=codes, attention_mask=frames_mask)` decodes (the
      pipeline's vocoder call).

    A new model holds random codebooks (for tests); `hf_slm.training.kmeans.fit_mel_rvq_codec` fits them on speech.

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import MelRVQCodecConfig, MelRVQCodecModel
    >>> codec = MelRVQCodecModel(MelRVQCodecConfig(num_codebooks=2, codebook_size=16)).eval()
    >>> out = codec.encode(torch.randn(2, 1000), attention_mask=torch.tensor([[1] * 1000, [1] * 400 + [0] * 600]))
    >>> out.codes.shape, out.codes_mask.sum(-1).tolist()
    (torch.Size([2, 2, 4]), [4, 2])
    >>> codec.decode(out.codes, out.codes_mask).waveform.shape
    torch.Size([2, 1280])

    ```
    """

    config_class = MelRVQCodecConfig
    base_model_prefix = "mel_rvq_codec"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False

    def __init__(self, config: MelRVQCodecConfig):
        super().__init__(config)
        #: [num_codebooks, codebook_size, num_mel_bins] log-mel vectors; set by k-means, never by gradients.
        self.codebooks = nn.Parameter(
            torch.zeros(config.num_codebooks, config.codebook_size, config.num_mel_bins), requires_grad=False
        )
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        """Random codebooks around a typical speech log-mel (level 1) and small residuals (the others)."""
        if module is self:
            init.normal_(self.codebooks, std=0.5)
            self.codebooks[0].add_(-5.0)

    # ------------------------------------------------------------------ signal processing
    def _transforms(self, device) -> tuple[CodecLogMel, torch.Tensor, nn.Module]:
        """Mel analysis, the pseudo-inverse of its filterbank and Griffin-Lim, built on first use per device and kept
        out of the state dict. The pseudo-inverse gives torchaudio `InverseMelScale`'s minimum-norm least-squares
        magnitude in one matmul, and also where filters are empty or overlap exactly (`lstsq`'s default driver
        refuses a rank-deficient filterbank)."""
        cache = self.__dict__.setdefault("_signal_transforms", {})
        key = str(device)
        if key not in cache:
            c = self.config
            win_length = c.win_length or c.n_fft
            mel = CodecLogMel(c.sampling_rate, c.n_fft, c.hop_length, win_length, c.num_mel_bins, c.mel_fmin,
                              c.mel_fmax)  # fmt: skip
            # in float64: the float32 SVD rounds differently on another thread count, and Griffin-Lim from zero phase
            # turns a 1e-7 change of the magnitude into another waveform
            inverse = torch.linalg.pinv(mel.mel.mel_scale.fb.double().transpose(0, 1)).float()  # [n_freqs, n_mels]
            griffin_lim = torchaudio.transforms.GriffinLim(
                n_fft=c.n_fft, n_iter=c.griffin_lim_iters, win_length=win_length, hop_length=c.hop_length, power=1.0,
                rand_init=False,
            )  # fmt: skip
            cache[key] = (mel.to(device), inverse.to(device), griffin_lim.to(device))
        return cache[key]

    def log_mel(self, input_values, attention_mask=None) -> tuple[torch.FloatTensor, torch.BoolTensor]:
        """Right-padded audio [B, S] -> (log-mel [B, T, num_mel_bins] float32, frames mask [B, T]); frame t is
        centred on sample t * hop_length, T = ceil(S / hop_length). What the codebooks quantize and are fitted on."""
        waveforms, lengths = check_audio(input_values, attention_mask)
        waveforms, frames = self._pad_to_frames(waveforms, lengths)
        total = waveforms.shape[1] // self.hop_length
        minimum = self.config.n_fft // 2 + 1  # the centred STFT's reflect padding needs more samples than n_fft / 2
        if waveforms.shape[1] < minimum:
            waveforms = nn.functional.pad(waveforms, (0, minimum - waveforms.shape[1]))
        mel, _, _ = self._transforms(waveforms.device)
        return mel(waveforms.float())[:, :total], lengths_to_mask(frames, total)

    def quantize(self, log_mel: torch.FloatTensor, num_codebooks: int | None = None) -> torch.LongTensor:
        """Log-mel [..., num_mel_bins] -> codes [num_codebooks, ...]: the nearest vector of each level to what the
        levels before it left."""
        levels = self.config.num_codebooks if num_codebooks is None else num_codebooks
        if not 1 <= levels <= self.config.num_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.config.num_codebooks}], got {levels}")
        residual = log_mel.float().reshape(-1, log_mel.shape[-1])
        codes = []
        for book in self.codebooks[:levels].float():
            distances = (book * book).sum(-1)[None] - 2 * residual @ book.T  # + |x|^2, the same for every code
            index = distances.argmin(-1)
            residual = residual - book[index]
            codes.append(index.reshape(log_mel.shape[:-1]))
        return torch.stack(codes)

    def dequantize(self, codes: torch.LongTensor) -> torch.FloatTensor:
        """Codes [q, ...] -> log-mel [..., num_mel_bins]: the sum of each level's vector."""
        books = self.codebooks.float()
        return sum(books[level][codes[level]] for level in range(codes.shape[0]))

    # ------------------------------------------------------------------ encode / decode
    def encode(self, input_values, attention_mask=None, num_codebooks: int | None = None, return_dict=None):
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)`): right-padded mono audio at
                `config.sampling_rate`.
            attention_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 for real samples.
            num_codebooks (`int`, *optional*): levels to keep (default all `config.num_codebooks`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        log_mel, mask = self.log_mel(input_values, attention_mask)
        codes = self.quantize(log_mel, num_codebooks).permute(1, 0, 2)  # [B, Q, T]
        output = CodecEncoderOutput(codes=self._padded_codes(codes, mask), codes_mask=mask, latents=log_mel)
        return output if return_dict else output.to_tuple()

    def decode(self, codes, codes_mask=None, return_dict=None):
        r"""
        Args:
            codes (`torch.LongTensor` of shape `(batch, q, frames)`): codes of the first `q <= num_codebooks` levels;
                `(batch, frames)` means level 1 only.
            codes_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 for real frames.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        codes, mask = check_codes(codes, codes_mask, self.codebook_size, self.num_codebooks)
        frames = mask.long().sum(-1)
        log_mel = self.dequantize(codes.transpose(0, 1))  # [B, T, n_mels]
        if bool((frames < codes.shape[-1]).any()):  # Griffin-Lim is global: each item at its own length, as alone
            total = codes.shape[-1] * self.hop_length
            waveform = torch.cat([nn.functional.pad(self.griffin_lim(item[None, :n]), (0, total - n * self.hop_length))
                                  for item, n in zip(log_mel, frames.tolist())])  # fmt: skip
        else:
            waveform = self.griffin_lim(log_mel)
        return self._decoded(waveform, frames, return_dict)

    def griffin_lim(self, log_mel: torch.FloatTensor) -> torch.FloatTensor:
        """Log-mel [B, T, n_mels] -> waveform [B, T * hop_length]: least-squares magnitude, then Griffin-Lim from
        zero phase (deterministic)."""
        # Silent frames after the T real ones: at least one, since a centred STFT of T * hop samples has T + 1 frames
        # (Griffin-Lim then re-analyses its output at the frame count it was given), and enough for the STFT's reflect
        # padding of n_fft / 2 samples on a very short input; the output is cut back to T * hop samples.
        frames = log_mel.shape[1]
        silent = max(1, self.config.n_fft // (2 * self.hop_length) + 2 - frames)
        log_mel = nn.functional.pad(log_mel.float(), (0, 0, 0, silent), value=math.log(LOG_MEL_FLOOR))
        _, inverse, griffin_lim = self._transforms(log_mel.device)
        return griffin_lim(torch.relu(inverse @ torch.exp(log_mel).transpose(1, 2)))[:, : frames * self.hop_length]


__all__ = ["MelRVQCodecModel"]
