"""`SpeechLLMForConditionalGeneration`: audio encoder -> projector -> causal LM, and an optional CTC speech head."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import ModelOutput

from .configuration_speech_llm import (
    AUDIO_TOKEN,
    CHAT_END,
    CHAT_START,
    SpeechLLMConfig,
    SpeechLLMProjectorConfig,
    SpeechLLMSpeechDecoderConfig,
    audio_conv_layers,
    conv_output_lengths,
)
from .generation_speech_llm import CTCPrefixScoreLogitsProcessor, ctc_token_symbols


@dataclass
class SpeechLLMOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor`): text loss + `speech_loss_weight` * speech loss (those that were asked for).
    logits (`torch.FloatTensor` of shape `(batch, sequence, vocab)`): the LM's logits.
    cache (`Cache`): the LM's key / value cache.
    hidden_states, attentions: the LM's, when asked for.
    text_loss (`torch.FloatTensor`): cross-entropy on `labels` (audio placeholders never carry loss).
    speech_loss (`torch.FloatTensor`): CTC loss of the speech decoder on `unit_labels`.
    unit_logits (`torch.FloatTensor` of shape `(batch, frames, num_units + 1)`): the speech decoder's logits.
    audio_embeds (`torch.FloatTensor` of shape `(num_audio_tokens, hidden)`): the projected audio frames, in
        placeholder order.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: object | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    text_loss: torch.FloatTensor | None = None
    speech_loss: torch.FloatTensor | None = None
    unit_logits: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None


# ---------------------------------------------------------------------- projectors
def _valid_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def _windows(hidden: torch.Tensor, lengths: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the frames past each length, pad time to a multiple of `k`; -> `[B, W, k, D]` and the frame mask
    `[B, W, k]`. Padding then never reaches a valid window, so a clip projects the same alone or in a batch."""
    batch, frames, dim = hidden.shape
    mask = _valid_mask(lengths, frames)
    hidden = hidden * mask[..., None].to(hidden.dtype)
    pad = (-frames) % k
    hidden = F.pad(hidden, (0, 0, 0, pad))
    mask = F.pad(mask, (0, pad))
    windows = (frames + pad) // k
    return hidden.reshape(batch, windows, k, dim), mask.reshape(batch, windows, k)


def _window_means(hidden: torch.Tensor, lengths: torch.Tensor, k: int) -> torch.Tensor:
    """The mean of each window's valid frames: `[B, T, D]` -> `[B, ceil(T / k), D]`."""
    windows, mask = _windows(hidden, lengths, k)
    return windows.sum(2) / mask.sum(-1, keepdim=True).clamp(min=1).to(hidden.dtype)


class SpeechLLMStackMLPProjector(nn.Module):
    """SLAM-LLM: concatenate `downsample` consecutive frames, then Linear-GELU-Linear."""

    def __init__(self, config: SpeechLLMProjectorConfig, input_size: int, output_size: int):
        super().__init__()
        self.config = config
        self.linear_1 = nn.Linear(input_size * config.downsample, config.hidden_size)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(config.hidden_size, output_size)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows, _ = _windows(hidden, lengths, self.config.downsample)
        stacked = windows.flatten(2)
        return self.linear_2(self.act(self.linear_1(stacked))), self.config.output_lengths(lengths)


class SpeechLLMPoolLinearProjector(nn.Module):
    """Qwen2-Audio: average `downsample` frames (valid frames only), then Linear."""

    def __init__(self, config: SpeechLLMProjectorConfig, input_size: int, output_size: int):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear(_window_means(hidden, lengths, self.config.downsample)), self.config.output_lengths(lengths)


class SpeechLLMQFormerProjector(nn.Module):
    """SALMONN / Granite Speech: in each window of `downsample` frames, `num_queries` learned queries attend (self-
    attention, cross-attention to the window, MLP; `num_layers` times), then Linear to the LM width."""

    def __init__(self, config: SpeechLLMProjectorConfig, input_size: int, output_size: int):
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.input_proj = nn.Linear(input_size, width)
        self.queries = nn.Parameter(torch.zeros(config.num_queries, width))
        self.window_positions = nn.Parameter(torch.zeros(config.downsample, width))
        layer = nn.TransformerDecoderLayer(
            width, config.num_attention_heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.layers = nn.TransformerDecoder(layer, config.num_layers, norm=nn.LayerNorm(width))
        self.output_proj = nn.Linear(width, output_size)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows, mask = _windows(hidden, lengths, self.config.downsample)
        batch, num_windows, k, dim = windows.shape
        memory = self.input_proj(windows.reshape(batch * num_windows, k, dim)) + self.window_positions
        ignore = ~mask.reshape(batch * num_windows, k)
        ignore[:, 0] = False  # an all-padding window (dropped later) must not turn into NaN
        queries = self.queries.expand(batch * num_windows, -1, -1)
        out = self.layers(queries, memory, memory_key_padding_mask=ignore)
        out = out.reshape(batch, num_windows * self.config.num_queries, -1)
        return self.output_proj(out), self.config.output_lengths(lengths)


class SpeechLLMCTCPosteriorProjector(nn.Module):
    """LegoSLM: the encoder's CTC head gives each frame a distribution over its symbols (characters, word delimiter,
    blank); averaged over `downsample` frames, it weights `symbol_embeddings`, one LM-width row per symbol. Built
    from a CTC checkpoint, the head is the checkpoint's and row `s` starts as the LM's embedding of symbol `s`
    ([`~SpeechLLMCTCPosteriorProjector.init_from_ctc`]; the blank's row: the LM's `<|audio|>` embedding), so the LM
    reads audio as soft text from the first step."""

    def __init__(self, config: SpeechLLMProjectorConfig, input_size: int, output_size: int):
        super().__init__()
        self.config = config
        self.ctc_head = nn.Linear(input_size, config.ctc_vocab_size)
        self.symbol_embeddings = nn.Linear(config.ctc_vocab_size, output_size, bias=False)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posteriors = (self.ctc_head(hidden).float() / self.config.temperature).softmax(-1).to(hidden.dtype)
        means = _window_means(posteriors, lengths, self.config.downsample)
        return self.symbol_embeddings(means), self.config.output_lengths(lengths)

    @torch.no_grad()
    def init_from_ctc(self, ctc_head: nn.Linear, symbol_token_ids: list[list[int]], lm_embeddings: torch.Tensor):
        """Copy `ctc_head` (the CTC checkpoint's classifier) and set row `s` of the table to the mean LM embedding
        of `symbol_token_ids[s]` (no ids, as for the blank: zeros)."""
        if ctc_head.weight.shape != self.ctc_head.weight.shape:
            raise ValueError(f"CTC head of shape {tuple(ctc_head.weight.shape)} does not fit the projector's "
                             f"{tuple(self.ctc_head.weight.shape)} (ctc_vocab_size x encoder width)")  # fmt: skip
        if len(symbol_token_ids) != self.config.ctc_vocab_size:
            raise ValueError(f"{len(symbol_token_ids)} symbol mappings for {self.config.ctc_vocab_size} CTC classes")
        self.ctc_head.weight.copy_(ctc_head.weight)
        self.ctc_head.bias.copy_(ctc_head.bias)
        table = torch.zeros_like(self.symbol_embeddings.weight)  # [output_size, ctc_vocab_size]
        for symbol, ids in enumerate(symbol_token_ids):
            if ids:
                table[:, symbol] = lm_embeddings[ids].mean(0).to(table.dtype)
        self.symbol_embeddings.weight.copy_(table)
        for tensor in (self.ctc_head.weight, self.ctc_head.bias, self.symbol_embeddings.weight):
            tensor._is_hf_initialized = True


PROJECTOR_CLASSES = {
    "stack_mlp": SpeechLLMStackMLPProjector,
    "pool_linear": SpeechLLMPoolLinearProjector,
    "qformer": SpeechLLMQFormerProjector,
    "ctc_posterior": SpeechLLMCTCPosteriorProjector,
}


def build_projector(config: SpeechLLMProjectorConfig, input_size: int, output_size: int) -> nn.Module:
    return PROJECTOR_CLASSES[config.projector_type](config, input_size, output_size)


# ---------------------------------------------------------------------- speech decoder (speech out)
class SpeechLLMSpeechDecoder(nn.Module):
    """LLaMA-Omni's speech decoder: LM hidden states -> Linear -> repeat `upsample_factor` times -> a small causal
    Llama -> logits over `num_units` units + blank, trained with CTC. Causal attention makes chunked decoding
    ([`~SpeechLLMSpeechDecoder.stream_units`]) give exactly the units of a whole-utterance decode."""

    def __init__(self, config: SpeechLLMSpeechDecoderConfig, input_size: int):
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(input_size, config.hidden_size)
        transformer_config = CONFIG_MAPPING["llama"](
            vocab_size=1,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_attention_heads,
            max_position_embeddings=config.max_position_embeddings,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
        self.transformer = AutoModel.from_config(transformer_config)
        self.transformer.embed_tokens = None  # it reads inputs_embeds only; no unused (never-trained) table
        self.head = nn.Linear(config.hidden_size, config.num_units + 1)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        """`hidden` `[B, T, D_lm]` (valid prefix `lengths`) -> unit logits `[B, T * upsample_factor, units + 1]`."""
        frames = self.input_proj(hidden).repeat_interleave(self.config.upsample_factor, dim=1)
        mask = None
        if lengths is not None:
            mask = _valid_mask(lengths * self.config.upsample_factor, frames.shape[1]).long()
        out = self.transformer(inputs_embeds=frames, attention_mask=mask, cache=cache, use_cache=cache is not None)
        return self.head(out.last_hidden_state)

    def ctc_loss(self, hidden: torch.Tensor, lengths: torch.Tensor, unit_labels: torch.Tensor) -> tuple:
        """CTC loss (mean over utterances of the per-unit loss) of `unit_labels` `[B, U]` (padding -100)."""
        target_lengths = (unit_labels != -100).sum(-1)
        frames = lengths * self.config.upsample_factor
        short = (frames < target_lengths).nonzero().flatten().tolist()
        if short:  # CTC cannot align them: the loss would be infinite (or silently zeroed)
            raise ValueError(
                f"rows {short}: {frames[short].tolist()} decoder frames for {target_lengths[short].tolist()} units; "
                f"raise speech_decoder_config.upsample_factor ({self.config.upsample_factor})"
            )
        valid = unit_labels[unit_labels != -100]
        bad = valid[(valid < 0) | (valid >= self.config.num_units)]
        if bad.numel():  # F.ctc_loss does not check: on CPU it reads past the logits and returns garbage
            raise ValueError(
                f"unit_labels hold {sorted(set(bad.tolist()))[:10]} outside [0, {self.config.num_units}) "
                f"(speech_decoder_config.num_units); the units come from a larger tokenizer than the decoder's"
            )
        logits = self(hidden, lengths)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        targets = unit_labels.clamp(min=0)
        loss = F.ctc_loss(
            log_probs, targets, frames, target_lengths, blank=self.config.blank_id,
            reduction="mean", zero_infinity=True,
        )  # fmt: skip
        return loss, logits

    def _collapse(self, logits: torch.Tensor, previous: int | None) -> tuple[list[int], int | None]:
        units = []
        for unit in logits.argmax(-1).tolist():
            if unit != previous and unit != self.config.blank_id:
                units.append(unit)
            previous = unit
        return units, previous

    @torch.no_grad()
    def decode_units(self, hidden: torch.Tensor) -> list[int]:
        """Greedy CTC decode of one utterance's hidden states `[T, D_lm]`: unit ids, repeats and blanks removed."""
        logits = self(hidden.reshape(1, -1, hidden.shape[-1]))[0]
        return self._collapse(logits, None)[0]

    @torch.no_grad()
    def stream_units(self, hidden_chunks: Iterable[torch.Tensor]) -> Iterator[list[int]]:
        """Streaming decode: for each chunk of LM hidden states (`[T_i, D_lm]`, as they are generated), the new unit
        ids (greedy CTC, collapsed across chunk borders). A key / value cache carries the causal context, so the
        chunks together give the units of [`~SpeechLLMSpeechDecoder.decode_units`] on the whole utterance."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.transformer.config)
        previous = None
        for chunk in hidden_chunks:
            logits = self(chunk.reshape(1, -1, chunk.shape[-1]), cache=cache)[0]
            units, previous = self._collapse(logits, previous)
            yield units


# ---------------------------------------------------------------------- the model
class SpeechLLMPreTrainedModel(PreTrainedModel):
    config_class = SpeechLLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SpeechLLMQFormerProjector):
            init.normal_(module.queries, mean=0.0, std=0.02)
            init.normal_(module.window_positions, mean=0.0, std=0.02)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


def build_audio_encoder(audio_config) -> PreTrainedModel:
    """The encoder of `audio_config`: `AutoModel.from_config`, keeping only the encoder of an encoder-decoder
    (Whisper)."""
    model = AutoModel.from_config(audio_config)
    return model.get_encoder() if getattr(audio_config, "is_encoder_decoder", False) else model


class SpeechLLMForConditionalGeneration(SpeechLLMPreTrainedModel, GenerationMixin):
    r"""
    A continuous-feature speech LLM: `audio_tower` (any transformers audio encoder) -> `projector` -> the
    projected frames replace the `audio_token_id` placeholders of the prompt -> `language_model` (any
    `AutoModelForCausalLM`). The optional `speech_decoder` turns the LM's hidden states into discrete units (CTC).

    Args:
        config ([`SpeechLLMConfig`]): the configuration.
        audio_encoder, language_model (`PreTrainedModel`, *optional*): already-built parts to use instead of building
            them from the config (kept as initialised; see [`~SpeechLLMForConditionalGeneration.from_encoder_and_lm`]).
    """

    def __init__(self, config: SpeechLLMConfig, audio_encoder=None, language_model=None):
        super().__init__(config)
        self.audio_tower = audio_encoder if audio_encoder is not None else build_audio_encoder(config.audio_config)
        self.projector = build_projector(
            config.projector_config, config.audio_hidden_size, config.text_config.hidden_size
        )
        for given in (audio_encoder, language_model):  # pretrained parts: post_init must not touch them
            if given is not None:
                _mark_initialized(given)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.language_model = language_model
        self.speech_decoder = None
        if config.speech_decoder_config is not None:
            self.speech_decoder = SpeechLLMSpeechDecoder(config.speech_decoder_config, config.text_config.hidden_size)
        self.post_init()
        self.audio_tower.requires_grad_(not config.freeze_audio_encoder)
        self.language_model.requires_grad_(not config.freeze_text_model)

    # ------------------------------------------------------------------ delegation to the LM
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def get_encoder(self):
        return self.audio_tower

    @property
    def accepts_loss_kwargs(self) -> bool:
        """Whether Trainer may hand `num_items_in_batch` in and skip its gradient-accumulation scaling: only for the
        text loss alone (the LM normalises it by the tokens of the whole accumulated batch); the CTC loss is a
        per-batch mean, which Trainer must scale."""
        return self.speech_decoder is None

    # ------------------------------------------------------------------ audio
    def audio_token_counts(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        """Placeholders per clip for `feature_lengths` encoder inputs (mel frames or samples)."""
        frames = conv_output_lengths(feature_lengths, audio_conv_layers(self.config))
        return self.config.projector_config.output_lengths(frames)

    def _encoder_frames(self, audio: torch.Tensor, feature_attention_mask: torch.Tensor | None):
        """The encoder's `audio_layer` for a batch of clips: (frames `[B, T, D]`, valid frames per clip `[B]`)."""
        kwargs = {}
        if feature_attention_mask is not None:
            kwargs["attention_mask"] = feature_attention_mask
            input_lengths = feature_attention_mask.sum(-1)
        else:
            input_lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        layer = self.config.audio_layer
        outputs = self.audio_tower(audio, output_hidden_states=layer != -1, return_dict=True, **kwargs)
        hidden = outputs.last_hidden_state if layer == -1 else outputs.hidden_states[layer]
        return hidden, conv_output_lengths(input_lengths, audio_conv_layers(self.config)).clamp(max=hidden.shape[1])

    def get_audio_features(self, audio: torch.Tensor, feature_attention_mask: torch.Tensor | None = None):
        """Encoder -> projector for a batch of clips; -> (projected frames of every clip, concatenated in order
        `[N, hidden]`, and frames per clip `[B]`)."""
        _, _, frames, frame_counts = self._encode_and_project(audio, feature_attention_mask)
        return frames, frame_counts

    def _encode_and_project(self, audio: torch.Tensor, feature_attention_mask: torch.Tensor | None):
        """One encoder pass: (encoder frames, their lengths, the projected frames of every clip concatenated, and
        projected frames per clip)."""
        hidden, lengths = self._encoder_frames(audio, feature_attention_mask)
        projected, projected_lengths = self.projector(hidden, lengths)
        return hidden, lengths, projected[_valid_mask(projected_lengths, projected.shape[1])], projected_lengths

    @torch.no_grad()
    def ctc_log_posteriors(self, audio: torch.Tensor, feature_attention_mask: torch.Tensor | None = None):
        """A `ctc_posterior` projector's CTC head on each encoder frame: (log posteriors `[B, frames, classes]`,
        valid frames per clip `[B]`)."""
        self._check_ctc_head()
        hidden, lengths = self._encoder_frames(audio, feature_attention_mask)
        return self._ctc_log_probs(hidden), lengths

    def _check_ctc_head(self) -> None:
        projector = self.config.projector_config
        if projector.projector_type != "ctc_posterior":
            raise ValueError(f"CTC posteriors need a ctc_posterior projector; this model's is "
                             f"{projector.projector_type!r}")  # fmt: skip

    def _ctc_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.projector.ctc_head(hidden).float() / self.config.projector_config.temperature
        return logits.log_softmax(-1)

    def ctc_prefix_scorer(self, prompt_length: int, ctc_weight: float, input_features=None, input_values=None,
                          feature_attention_mask=None, eos_token_id=None,
                          ctc_posteriors=None) -> CTCPrefixScoreLogitsProcessor:  # fmt: skip
        """A `generate` logits processor for joint CTC / LM transcription of a batch of prompts (one clip each, left
        padded to `prompt_length`): [`CTCPrefixScoreLogitsProcessor`] over this model's CTC posteriors (of the audio,
        or `ctc_posteriors=(log_probs, lengths)` already computed, as `embed_prompt` gives them). Needs a
        `ctc_posterior` projector built by `from_encoder_and_lm` (`ctc_symbol_token_ids`); `eos_token_id` defaults
        to the generation config's."""
        projector = self.config.projector_config
        if projector.projector_type != "ctc_posterior" or projector.ctc_symbol_token_ids is None:
            raise ValueError("ctc_weight needs a ctc_posterior projector that knows its CTC symbols' LM tokens "
                             "(projector_config.ctc_symbol_token_ids, set by from_encoder_and_lm)")  # fmt: skip
        if ctc_posteriors is None:
            audio = input_features if input_features is not None else input_values
            ctc_posteriors = self.ctc_log_posteriors(audio, feature_attention_mask)
        log_probs, lengths = ctc_posteriors
        vocab_size = self.get_input_embeddings().weight.shape[0]
        symbols = ctc_token_symbols(projector.ctc_symbol_token_ids, projector.ctc_blank_id, vocab_size)
        eos = self.generation_config.eos_token_id if eos_token_id is None else eos_token_id
        return CTCPrefixScoreLogitsProcessor(log_probs, lengths, symbols, projector.ctc_blank_id, eos, prompt_length,
                                             ctc_weight)  # fmt: skip

    @torch.no_grad()
    def embed_prompt(self, input_ids, input_features=None, input_values=None, feature_attention_mask=None,
                     ctc: bool = False) -> tuple[torch.Tensor, tuple | None]:  # fmt: skip
        """The prompts' input embeddings with their audio merged in, from one encoder pass over each clip, and with
        `ctc=True` the CTC posteriors of the same pass (`ctc_log_posteriors`' output). `generate(inputs_embeds=...)`
        then never runs the encoder: beam search would run it on every beam's copy of the prompt."""
        audio = input_features if input_features is not None else input_values
        inputs_embeds = self.get_input_embeddings()(input_ids)
        if audio is None:
            return inputs_embeds, None
        if ctc:
            self._check_ctc_head()
        hidden, lengths, frames, _ = self._encode_and_project(audio, feature_attention_mask)
        inputs_embeds, _ = self._merge(input_ids, inputs_embeds, frames)
        return inputs_embeds, ((self._ctc_log_probs(hidden), lengths) if ctc else None)

    def merge_audio(self, input_ids, inputs_embeds, audio, feature_attention_mask):
        """`inputs_embeds` with each `audio_token_id` position replaced by the next projected audio frame."""
        audio_embeds, _ = self.get_audio_features(audio, feature_attention_mask)
        return self._merge(input_ids, inputs_embeds, audio_embeds)

    def _merge(self, input_ids, inputs_embeds, audio_embeds):
        placeholders = input_ids == self.config.audio_token_id
        tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
        if not tracing and int(placeholders.sum()) != audio_embeds.shape[0]:  # a value check: eager only
            raise ValueError(
                f"the prompt holds {int(placeholders.sum())} audio placeholders (id {self.config.audio_token_id}) but "
                f"the audio projects to {audio_embeds.shape[0]} frames: build inputs with SpeechLLMProcessor, which "
                f"expands each {AUDIO_TOKEN} to its clip's frame count"
            )
        merged = inputs_embeds.masked_scatter(placeholders[..., None], audio_embeds.to(inputs_embeds.dtype))
        return merged, audio_embeds

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        input_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        unit_labels: torch.LongTensor | None = None,
        speech_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> SpeechLLMOutput | tuple:
        r"""
        input_features / input_values: the feature extractor's output (log-mel for Whisper, waveform for wav2vec 2.0
            / HuBERT / WavLM), one row per clip, clips in placeholder order.
        feature_attention_mask: `[clips, frames]`, 1 on real audio (the feature extractor's attention mask).
        labels: `[B, L]` text labels (-100: no loss); audio placeholders never carry loss.
        unit_labels: `[B, U]` unit targets of the speech decoder (-100: padding); it reads the LM's last hidden
            states at `speech_mask` (default: where `labels != -100`, the answer).
        """
        return_dict = kwargs.pop("return_dict", None)
        audio = input_features if input_features is not None else input_values
        audio_embeds = None
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            if audio is not None:
                inputs_embeds, audio_embeds = self.merge_audio(input_ids, inputs_embeds, audio, feature_attention_mask)
        if labels is not None and input_ids is not None:
            labels = labels.masked_fill(input_ids == self.config.audio_token_id, -100)
        want_speech = unit_labels is not None
        if want_speech and self.speech_decoder is None:
            raise ValueError("unit_labels given but the config has no speech_decoder_config")
        if use_cache is None:
            use_cache = False if (self.training or labels is not None) else getattr(self.config, "use_cache", True)
        output_hidden_states = kwargs.pop("output_hidden_states", None) or want_speech
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )
        loss, speech_loss, unit_logits = outputs.loss, None, None
        if want_speech:
            if speech_mask is None:
                if labels is None:
                    raise ValueError("unit_labels need `labels` or `speech_mask` to say which positions are speech")
                speech_mask = labels != -100
            hidden, lengths = _gather(outputs.hidden_states[-1], speech_mask)
            speech_loss, unit_logits = self.speech_decoder.ctc_loss(hidden, lengths, unit_labels)
            weighted = self.config.speech_loss_weight * speech_loss
            loss = weighted if loss is None else loss + weighted
        output = SpeechLLMOutput(
            loss=loss,
            logits=outputs.logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            text_loss=outputs.loss,
            speech_loss=speech_loss,
            unit_logits=unit_logits,
            audio_embeds=audio_embeds,
        )
        return output if return_dict is not False else output.to_tuple()

    # ------------------------------------------------------------------ speech out
    def add_speech_decoder(self, decoder_config: dict | SpeechLLMSpeechDecoderConfig) -> SpeechLLMSpeechDecoder:
        """Give a text-out model a fresh speech decoder (recorded in `config.speech_decoder_config`)."""
        if isinstance(decoder_config, dict):
            decoder_config = SpeechLLMSpeechDecoderConfig(**decoder_config)
        decoder = SpeechLLMSpeechDecoder(decoder_config, self.config.text_config.hidden_size)
        self.speech_decoder = decoder.to(device=self.device, dtype=self.dtype)
        self.config.speech_decoder_config = decoder_config
        return self.speech_decoder

    @torch.no_grad()
    def answer_hidden_states(self, sequences: torch.LongTensor, prompt_length: int, **model_inputs) -> list:
        """The LM's last hidden states at the generated positions of each row of `generate`'s `sequences`
        (`[T_i, hidden]` per row, padding and tokens after the first EOS dropped): the speech decoder's input."""
        model_inputs = {k: v for k, v in model_inputs.items() if k not in ("input_ids", "labels")}
        attention_mask = model_inputs.pop("attention_mask")
        new = sequences[:, prompt_length:]
        eos = self.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        keep = torch.ones_like(new, dtype=torch.bool)
        for row in range(new.shape[0]):
            ends = [i for i, t in enumerate(new[row].tolist()) if t in eos]
            if ends:
                keep[row, ends[0] + 1 :] = False
        full_mask = torch.cat([attention_mask, keep.long()], dim=1)
        position_ids = (full_mask.cumsum(-1) - 1).clamp(min=0)  # as generate counts them under left padding
        out = self(input_ids=sequences, attention_mask=full_mask, position_ids=position_ids, output_hidden_states=True,
                   use_cache=False, **model_inputs)  # fmt: skip
        hidden = out.hidden_states[-1][:, prompt_length:]
        return [hidden[row][keep[row]] for row in range(new.shape[0])]

    # ------------------------------------------------------------------ building from checkpoints
    @classmethod
    def from_encoder_and_lm(
        cls,
        encoder: str | os.PathLike | PreTrainedModel,
        language_model: str | os.PathLike | PreTrainedModel,
        tokenizer=None,
        projector: dict | SpeechLLMProjectorConfig | None = None,
        speech_decoder: dict | SpeechLLMSpeechDecoderConfig | None = None,
        audio_layer: int = -1,
        audio_token_id: int | None = None,
        encoder_tokenizer=None,
        **from_pretrained_kwargs,
    ) -> SpeechLLMForConditionalGeneration:
        """Build from a pretrained audio encoder and a pretrained causal LM (Hub names, local folders or loaded
        models); the projector (and speech decoder) start fresh.

        `tokenizer` is the LM's tokenizer after [`add_speech_llm_tokens`]: the LM's embeddings are resized to it
        (new rows: mean of the old ones) and `audio_token_id` is read from it. Without a tokenizer, pass
        `audio_token_id`. A Whisper checkpoint contributes its encoder only. With a tokenizer, `generate` also stops at
        `<|im_end|>` or `<|im_start|>` (a new turn never belongs to the answer) and pads with the tokenizer's pad
        token. `from_pretrained_kwargs` (`dtype`,
        `revision`, ...) go to both `from_pretrained` calls.

        With a `"ctc_posterior"` projector, `encoder` is a CTC checkpoint (`AutoModelForCTC`: wav2vec 2.0, HuBERT,
        WavLM, wav2vec2-bert): its head moves into the projector, and each CTC symbol's row starts as the LM's
        embedding of that symbol, read through `encoder_tokenizer` (the CTC vocabulary; default: the tokenizer saved
        with the encoder) and `tokenizer` (required).
        """
        if not isinstance(projector, SpeechLLMProjectorConfig):
            projector = dict(projector or {})
        ctc_head = None
        kind = projector.get("projector_type") if isinstance(projector, dict) else projector.projector_type
        if kind == "ctc_posterior":
            ctc_blank_id, ctc_head, encoder, encoder_tokenizer = _split_ctc_encoder(
                encoder, encoder_tokenizer, tokenizer, **from_pretrained_kwargs
            )
            if isinstance(projector, dict):
                projector["ctc_vocab_size"] = ctc_head.out_features
            elif projector.ctc_vocab_size != ctc_head.out_features:
                raise ValueError(f"projector ctc_vocab_size {projector.ctc_vocab_size} but the CTC head has "
                                 f"{ctc_head.out_features} classes")  # fmt: skip
        if not isinstance(encoder, PreTrainedModel):
            encoder = AutoModel.from_pretrained(encoder, **from_pretrained_kwargs)
        if getattr(encoder.config, "is_encoder_decoder", False):
            encoder = encoder.get_encoder()
        if not isinstance(language_model, PreTrainedModel):
            language_model = AutoModelForCausalLM.from_pretrained(language_model, **from_pretrained_kwargs)
        if tokenizer is not None:
            audio_token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
            if audio_token_id is None or audio_token_id == tokenizer.unk_token_id:
                raise ValueError(f"the tokenizer has no {AUDIO_TOKEN} token: call add_speech_llm_tokens(tokenizer)")
            if len(tokenizer) > language_model.get_input_embeddings().weight.shape[0]:
                language_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        if audio_token_id is None:
            raise ValueError("pass the LM's `tokenizer` (with the speech-LLM tokens) or an `audio_token_id`")
        config = SpeechLLMConfig(
            audio_config=encoder.config,
            text_config=language_model.config,
            projector_config=projector,
            speech_decoder_config=speech_decoder,
            audio_token_id=audio_token_id,
            audio_layer=audio_layer,
        )
        model = cls(config, audio_encoder=encoder, language_model=language_model)
        if ctc_head is not None:
            symbol_ids = _ctc_symbol_token_ids(encoder_tokenizer, tokenizer, ctc_head.out_features, ctc_blank_id)
            model.projector.init_from_ctc(ctc_head, symbol_ids, model.get_input_embeddings().weight)
            config.projector_config.ctc_symbol_token_ids = symbol_ids
            config.projector_config.ctc_blank_id = ctc_blank_id
        model.generation_config = language_model.generation_config
        if tokenizer is not None:  # answers end at the chat template's end marker, a new turn's start, or the EOS
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            eos = model.generation_config.eos_token_id
            eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
            for marker in (CHAT_END, CHAT_START):
                token = tokenizer.convert_tokens_to_ids(marker)
                if token is not None and token != tokenizer.unk_token_id and token not in eos:
                    eos.append(token)
            model.generation_config.eos_token_id = eos
        return model


# ---------------------------------------------------------------------- helpers
def _split_ctc_encoder(encoder, encoder_tokenizer, tokenizer, **from_pretrained_kwargs):
    """A CTC checkpoint (name, folder or loaded `...ForCTC`) -> (its blank id, CTC head, encoder, tokenizer)."""
    from transformers import AutoModelForCTC, AutoTokenizer

    if tokenizer is None:
        raise ValueError("a ctc_posterior projector needs the LM's `tokenizer` to map CTC symbols to LM embeddings")
    source = encoder
    if not isinstance(encoder, PreTrainedModel):
        encoder = AutoModelForCTC.from_pretrained(source, **from_pretrained_kwargs)
        if encoder_tokenizer is None:
            encoder_tokenizer = AutoTokenizer.from_pretrained(source)
    head = getattr(encoder, "lm_head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"a ctc_posterior projector needs a CTC encoder (a ...ForCTC model with an `lm_head`); got "
            f"{type(encoder).__name__}"
        )
    if encoder_tokenizer is None:
        raise ValueError("pass `encoder_tokenizer` (the CTC vocabulary) with a loaded CTC encoder")
    return encoder.config.pad_token_id, head, encoder.base_model, encoder_tokenizer  # transformers' CTC blank: the pad id


def symbol_token_ids(symbol: str, tokenizer) -> list[int]:
    """The LM token ids that stand for one spelled symbol: its own token where the LM has one (every letter of a BPE
    or character vocabulary), else its pieces; a space is the LM's word boundary (its encoding of `" "`)."""
    token = tokenizer.convert_tokens_to_ids(symbol)
    if symbol != " " and token is not None and token != tokenizer.unk_token_id:
        return [token]
    return [t for t in tokenizer(symbol, add_special_tokens=False)["input_ids"] if t != tokenizer.unk_token_id]


def _ctc_symbol_token_ids(encoder_tokenizer, tokenizer, num_symbols: int, blank_id: int | None) -> list[list[int]]:
    """For each CTC class, the LM token ids of its symbol ([`symbol_token_ids`]; the word delimiter is a space), the
    blank -> `<|audio|>` (a frame that holds no symbol is plain audio), other special tokens -> none."""
    if len(encoder_tokenizer) != num_symbols:
        raise ValueError(f"the CTC tokenizer has {len(encoder_tokenizer)} entries but the CTC head {num_symbols} classes")
    specials = set(encoder_tokenizer.all_special_ids)
    delimiter = getattr(encoder_tokenizer, "word_delimiter_token", None)
    table = []
    for symbol in range(num_symbols):
        text = encoder_tokenizer.convert_ids_to_tokens(symbol)
        if symbol == blank_id:
            table.append([tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)])
        elif text == delimiter:
            table.append(symbol_token_ids(" ", tokenizer))
        elif symbol in specials:
            table.append([])
        else:
            table.append(symbol_token_ids(text, tokenizer))
    return table


def _gather(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `hidden` `[B, L, D]` where `mask` `[B, L]` is true, left-aligned and zero-padded, and their counts."""
    lengths = mask.sum(-1)
    out = hidden.new_zeros(hidden.shape[0], max(int(lengths.max()), 1), hidden.shape[-1])
    out[_valid_mask(lengths, out.shape[1])] = hidden[mask]
    return out, lengths


def _mark_initialized(model: nn.Module) -> None:
    """Flag every module and tensor as initialised so `post_init` leaves pretrained weights alone."""
    for module in model.modules():
        module._is_hf_initialized = True
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor._is_hf_initialized = True


__all__ = [
    "PROJECTOR_CLASSES",
    "SpeechLLMCTCPosteriorProjector",
    "SpeechLLMForConditionalGeneration",
    "SpeechLLMOutput",
    "SpeechLLMPoolLinearProjector",
    "SpeechLLMPreTrainedModel",
    "SpeechLLMQFormerProjector",
    "SpeechLLMSpeechDecoder",
    "SpeechLLMStackMLPProjector",
    "build_audio_encoder",
    "build_projector",
    "symbol_token_ids",
]
