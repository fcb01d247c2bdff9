"""Seeded tiny components of every family (diffusers' `get_dummy_components` habit), shared by the tests."""

from __future__ import annotations

import numpy as np
import torch
from transformers import HubertConfig, LlamaConfig

from hf_slm.models.dialogue_lm import DialogueLMConfig, DialogueLMForCausalLM
from hf_slm.models.codec import (
    CodecConfig,
    CodecModel,
    MelRVQCodecConfig,
    MelRVQCodecModel,
    RVQCodecConfig,
    RVQCodecModel,
)
from hf_slm.models.speech_lm import (
    ExpressiveEncoderConfig,
    ExpressiveEncoderModel,
    MultiStreamSpeechLMConfig,
    MultiStreamSpeechLMForCausalLM,
    SpeechLMConfig,
    SpeechLMForCausalLM,
)
from hf_slm.models.ssl_encoder import SSLEncoderConfig, SSLEncoderForPreTraining
from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.training.expressive import fit_expressive_encoder
from hf_slm.training.kmeans import fit_unit_tokenizer
from hf_slm.models.unit_vocoder import (
    UnitHifiGanVocoder,
    UnitHifiGanVocoderConfig,
    UnitMelVocoder,
    UnitMelVocoderConfig,
)

NUM_UNITS = 16


def tiny_hubert_config() -> HubertConfig:
    return HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(8, 8, 8, 8, 8, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )


def _fit_random(tokenizer: UnitEncoderModel, seed: int) -> UnitEncoderModel:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2000, tokenizer.config.feature_dim, generator=g)
    fit_unit_tokenizer(tokenizer, features, seed=seed, show_progress=False, max_steps=5)
    return tokenizer


def tiny_unit_encoder(frontend: str = "mfcc", seed: int = 0, vtln: bool = False) -> UnitEncoderModel:
    """`vtln`: per-utterance CMVN and a 5-factor vocal tract length warp search."""
    torch.manual_seed(seed)
    kwargs = {"ssl_config": tiny_hubert_config(), "ssl_layer": 1} if frontend == "ssl" else {}
    if vtln:
        kwargs = {"utterance_normalization": True, "vtln_warps": [0.8, 0.9, 1.0, 1.1, 1.2]}
    config = UnitEncoderConfig(frontend=frontend, num_units=NUM_UNITS, **kwargs)
    return _fit_random(UnitEncoderModel(config).eval(), seed)


def tiny_expressive_encoder(seed: int = 0) -> ExpressiveEncoderModel:
    """8 pitch / 4 style tokens (style every 0.5 s), fitted on harmonic tones gliding between 90 and 300 Hz."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(32000) / 16000
    waves = []
    for _ in range(4):
        low, high = 90 + 60 * torch.rand(2, generator=generator)
        f0 = low + (high + 150 - low) * t / 2  # a glide over 2 s
        phase = 2 * torch.pi * torch.cumsum(f0, 0) / 16000
        waves.append(sum(torch.sin(k * phase) / k for k in (1, 2, 3)) * 0.3)
    config = ExpressiveEncoderConfig(num_pitch_tokens=8, num_style_tokens=4, style_frames=25)
    tokenizer = ExpressiveEncoderModel(config)
    fit_expressive_encoder(tokenizer, waves, seed=seed, max_steps=10)
    return tokenizer.eval()


def tiny_speech_lm(seed: int = 0) -> SpeechLMForCausalLM:
    torch.manual_seed(seed)
    backbone = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=NUM_UNITS)).eval()


def tiny_multistream_speech_lm(seed: int = 0) -> MultiStreamSpeechLMForCausalLM:
    """Codec-style, 3 codebooks with delays [0, 1, 2] and a depth transformer (the path with the most weights)."""
    torch.manual_seed(seed)
    backbone = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    config = MultiStreamSpeechLMConfig(
        text_config=backbone,
        stream_vocab_sizes=[NUM_UNITS] * 3,
        delays=[0, 1, 2],
        use_depth_transformer=True,
        depth_hidden_size=16,
        depth_num_hidden_layers=1,
        depth_num_attention_heads=2,
    )
    return MultiStreamSpeechLMForCausalLM(config).eval()


def tiny_acoustic_lm(stage: str = "coarse", seed: int = 0, max_positions: int = 512):
    """AudioLM's coarse (units -> codebooks 0, 1) or fine (codebooks 0, 1 -> 2, 3) stage over 16-code codebooks."""
    from hf_slm.models.acoustic_lm import AcousticLMConfig, AcousticLMForCausalLM

    torch.manual_seed(seed)
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=max_positions)  # fmt: skip
    coarse = stage == "coarse"
    split = {"condition": "units", "num_units": NUM_UNITS} if coarse else {"condition": "codes", "first_codebook": 2}
    config = AcousticLMConfig(text_config=backbone, codebook_size=NUM_UNITS, num_codebooks=2,
                              frame_rate=50.0, **split)  # fmt: skip
    return AcousticLMForCausalLM(config).eval()


def _acoustic_inputs(stage: str):
    codes = torch.randint(0, NUM_UNITS, (4, 5), generator=torch.Generator().manual_seed(0))
    units = [torch.arange(6) % NUM_UNITS] if stage == "coarse" else None
    inputs = tiny_acoustic_lm(stage).prepare_inputs([codes], units)
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


def tiny_dialogue_lm(seed: int = 0) -> DialogueLMForCausalLM:
    torch.manual_seed(seed)
    config = DialogueLMConfig(num_units=NUM_UNITS, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              max_duration=8, silence_unit=0)  # fmt: skip
    return DialogueLMForCausalLM(config).eval()


def _dialogue_inputs():
    units = torch.tensor([[[0, 0, 3, 3, 3, 5, 0, 0], [7, 7, 0, 0, 0, 0, 9, 9]]])  # [1, 2 channels, 8 frames]
    return {"input_ids": units, "attention_mask": torch.ones(1, 8, dtype=torch.long), "labels": units}


def tiny_hifigan_vocoder(seed: int = 0) -> UnitHifiGanVocoder:
    torch.manual_seed(seed)
    config = UnitHifiGanVocoderConfig(
        num_units=NUM_UNITS,
        embedding_dim=16,
        upsample_rates=(10, 8, 4),
        upsample_kernel_sizes=(20, 16, 8),
        upsample_initial_channel=32,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
    )
    return UnitHifiGanVocoder(config).eval()


def tiny_mel_vocoder(seed: int = 0, **overrides) -> UnitMelVocoder:
    torch.manual_seed(seed)
    config = UnitMelVocoderConfig(
        num_units=NUM_UNITS, hidden_size=32, num_unit_layers=1, num_mel_layers=1, griffin_lim_iters=4, **overrides
    )
    return UnitMelVocoder(config).eval()


def tiny_rvq_codec(seed: int = 0, **overrides) -> RVQCodecModel:
    """hop 16 (4 x 4), 3 levels of 16 codes; a small loss mel and tiny discriminators so 0.1 s clips train."""
    torch.manual_seed(seed)
    kwargs = dict(
        upsampling_ratios=(4, 4), num_filters=4, hidden_size=8, num_codebooks=3, codebook_size=16,
        mel_n_fft=128, mel_hop_length=32, mel_win_length=128, num_mel_bins=16,
        mpd_periods=(2, 3), mpd_channels=(4, 8, 8, 8, 8), msd_num_scales=1, msd_channels=(16,) * 7,
    )
    return RVQCodecModel(RVQCodecConfig(**{**kwargs, **overrides})).eval()


def tiny_mel_rvq_codec(seed: int = 0, **overrides) -> MelRVQCodecModel:
    """hop 16, a 128-point STFT, 16 mel bins, 3 levels of 16 random codes, 4 Griffin-Lim iterations."""
    torch.manual_seed(seed)
    kwargs = dict(hop_length=16, n_fft=128, num_mel_bins=16, num_codebooks=3, codebook_size=16, griffin_lim_iters=4)
    return MelRVQCodecModel(MelRVQCodecConfig(**{**kwargs, **overrides})).eval()


def tiny_codec(seed: int = 0) -> CodecModel:
    """A random tiny DAC (hop 16, 4 codebooks of 64) behind the codec interface, 2 codebooks kept."""
    from transformers import DacConfig

    torch.manual_seed(seed)
    dac = DacConfig(
        encoder_hidden_size=4, downsampling_ratios=[4, 4], decoder_hidden_size=16, n_codebooks=4, codebook_size=64,
        codebook_dim=4,
    )
    return CodecModel(CodecConfig(codec_config=dac, num_codebooks=2)).eval()


def tiny_ssl_encoder_config(**overrides) -> SSLEncoderConfig:
    """HuBERT's conv strides and kernels (50 Hz at 16 kHz, like the MFCC units), everything else tiny."""
    values = dict(tiny_hubert_config().to_dict(), num_label_classes=NUM_UNITS, final_dim=16)
    values.pop("model_type", None)
    return SSLEncoderConfig(**(values | overrides))


def tiny_ssl_encoder(seed: int = 0) -> SSLEncoderForPreTraining:
    torch.manual_seed(seed)
    return SSLEncoderForPreTraining(tiny_ssl_encoder_config()).eval()


def _audio_inputs():
    rng = np.random.default_rng(0)
    fe = SpeechFeatureExtractor()
    return dict(fe([rng.standard_normal(8000).astype(np.float32)], sampling_rate=16000, return_tensors="pt"))


def _unit_inputs():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _stream_inputs():
    frames = torch.tensor([[[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]])  # [1, 3 codebooks, 5]
    inputs = tiny_multistream_speech_lm().prepare_inputs(frames)
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


def tiny_speech_llm(seed: int = 0):
    from transformers import WhisperConfig

    from hf_slm.models.speech_llm import SpeechLLMConfig, SpeechLLMForConditionalGeneration

    torch.manual_seed(seed)
    audio = WhisperConfig(
        num_mel_bins=16, d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=32, max_source_positions=50, max_target_positions=8,
    )  # fmt: skip
    text = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2)  # fmt: skip
    config = SpeechLLMConfig(audio_config=audio, text_config=text, audio_token_id=39,
                             projector_config={"projector_type": "pool_linear", "downsample": 5})  # fmt: skip
    return SpeechLLMForConditionalGeneration(config).eval()


#: The word vocabulary of `tiny_speech_llm_parts`'s tokenizer.
SPEECH_LLM_WORDS = "the cat sat on a mat dog ran far away transcribe audio".split()


def tiny_speech_llm_parts(num_units: int | None = NUM_UNITS, seed: int = 0):
    """A random HuBERT + pool-linear + Llama speech LLM (with a CTC speech decoder over `num_units` units) and its
    processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Wav2Vec2FeatureExtractor

    from hf_slm.models.speech_llm import (
        AUDIO_TOKEN,
        SpeechLLMConfig,
        SpeechLLMForConditionalGeneration,
        SpeechLLMProcessor,
        add_speech_llm_tokens,
    )

    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(SPEECH_LLM_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    add_speech_llm_tokens(tokenizer)
    audio = HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )  # fmt: skip
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    decoder = None
    if num_units is not None:
        decoder = {"num_units": num_units, "upsample_factor": 4, "hidden_size": 32, "num_attention_heads": 2,
                   "intermediate_size": 64}  # fmt: skip
    config = SpeechLLMConfig(
        audio_config=audio, text_config=text, projector_config={"projector_type": "pool_linear", "downsample": 2},
        speech_decoder_config=decoder, audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
    )  # fmt: skip
    torch.manual_seed(seed)
    model = SpeechLLMForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True)
    return model, SpeechLLMProcessor.from_config(config, extractor, tokenizer)


def _speech_llm_inputs():
    """100 log-mel frames -> 50 encoder frames -> 10 projected frames, one per placeholder (id 39)."""
    features = torch.randn(1, 16, 100, generator=torch.Generator().manual_seed(0))
    input_ids = torch.cat([torch.tensor([[1, 2]]), torch.full((1, 10), 39), torch.tensor([[3, 4]])], dim=1)
    return {"input_ids": input_ids, "input_features": features}


VALLE_BACKBONE = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip


def tiny_valle_ar(seed: int = 0, group_size: int = 2, num_phonemes: int = 64, num_codebooks: int = 3,
                  frame_rate: float | None = None, codebook_size: int = NUM_UNITS):  # fmt: skip
    """VALL-E AR over 3 codebooks of 16 codes, groups of 2 (VALL-E 2)."""
    from hf_slm.models.valle import VallEARConfig, VallEARModel

    torch.manual_seed(seed)
    config = VallEARConfig(text_config=VALLE_BACKBONE, num_phonemes=num_phonemes, codebook_size=codebook_size,
                           num_codebooks=num_codebooks, group_size=group_size, frame_rate=frame_rate)  # fmt: skip
    return VallEARModel(config).eval()


def tiny_valle_nar(seed: int = 0, num_phonemes: int = 64, num_codebooks: int = 3, frame_rate: float | None = None,
                   group_size: int = 1, codebook_size: int = NUM_UNITS):  # fmt: skip
    from hf_slm.models.valle import VallENARConfig, VallENARModel

    torch.manual_seed(seed)
    config = VallENARConfig(text_config=VALLE_BACKBONE, num_phonemes=num_phonemes, codebook_size=codebook_size,
                            num_codebooks=num_codebooks, frame_rate=frame_rate, group_size=group_size)  # fmt: skip
    return VallENARModel(config).eval()


def valle_rows(batch: int = 2, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(phonemes, codes [3, T]) of `batch` rows of different lengths."""
    g = torch.Generator().manual_seed(seed)
    phonemes = [torch.randint(2, 64, (7 - 2 * i,), generator=g) for i in range(batch)]
    codes = [torch.randint(0, NUM_UNITS, (3, 9 - 3 * i), generator=g) for i in range(batch)]
    return phonemes, codes


def _valle_ar_inputs(batch: int = 1):
    inputs = tiny_valle_ar().prepare_inputs(*valle_rows(batch))
    return {k: inputs[k] for k in ("input_ids", "token_type_ids", "attention_mask")}


def _valle_nar_inputs(batch: int = 1):
    inputs = tiny_valle_nar().prepare_inputs(*valle_rows(batch), stages=[1, 2][:batch], prompt_frames=[3, 2][:batch])
    return {k: inputs[k] for k in ("input_ids", "token_type_ids", "attention_mask", "stage")}


#: name -> (factory, Auto class recorded in auto_map, example inputs builder); each row is the `component` of one
#: `ComponentTesterMixin` subclass in its family's test file (tests/test_registration.py checks)
COMPONENTS = {
    "unit_encoder_mfcc": (lambda: tiny_unit_encoder("mfcc"), "AutoModel", _audio_inputs),
    "unit_encoder_ssl": (lambda: tiny_unit_encoder("ssl"), "AutoModel", _audio_inputs),
    "unit_encoder_vtln": (lambda: tiny_unit_encoder("mfcc", vtln=True), "AutoModel", _audio_inputs),
    "speech_lm": (tiny_speech_lm, "AutoModelForCausalLM", _unit_inputs),
    "expressive_encoder": (tiny_expressive_encoder, "AutoModel", _audio_inputs),
    "multistream_speech_lm": (tiny_multistream_speech_lm, "AutoModel", _stream_inputs),
    "acoustic_lm_coarse": (lambda: tiny_acoustic_lm("coarse"), "AutoModel", lambda: _acoustic_inputs("coarse")),
    "acoustic_lm_fine": (lambda: tiny_acoustic_lm("fine"), "AutoModel", lambda: _acoustic_inputs("fine")),
    "unit_hifigan": (tiny_hifigan_vocoder, "AutoModel", _unit_inputs),
    "unit_mel_vocoder": (tiny_mel_vocoder, "AutoModel", _unit_inputs),
    "unit_mel_vocoder_istft": (lambda: tiny_mel_vocoder(waveform_head="istft", istft_num_layers=1), "AutoModel",
                               _unit_inputs),
    "codec": (tiny_codec, "AutoModel", _audio_inputs),
    "rvq_codec": (tiny_rvq_codec, "AutoModel", _audio_inputs),
    "mel_rvq_codec": (tiny_mel_rvq_codec, "AutoModel", _audio_inputs),
    "speech_llm": (tiny_speech_llm, "AutoModelForMultimodalLM", _speech_llm_inputs),
    "ssl_encoder": (tiny_ssl_encoder, "AutoModelForPreTraining", _audio_inputs),
    "valle_ar": (tiny_valle_ar, "AutoModel", _valle_ar_inputs),
    "valle_nar": (tiny_valle_nar, "AutoModel", _valle_nar_inputs),
    "dialogue_lm": (tiny_dialogue_lm, "AutoModel", _dialogue_inputs),
}


def tiny_pipeline(vocoder: str = "mel"):
    from hf_slm import SpeechLMPipeline

    return SpeechLMPipeline(
        feature_extractor=SpeechFeatureExtractor(),
        speech_tokenizer=tiny_unit_encoder("mfcc"),
        language_model=tiny_speech_lm(),
        vocoder=tiny_mel_vocoder() if vocoder == "mel" else tiny_hifigan_vocoder(),
    )


def random_codebooks(codec, seed=0):
    """transformers initialises EnCodec / Mimi / X-codec codebooks to zeros (every frame would get one code): give
    them random entries, as a trained checkpoint has, so the prompt's codes vary."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in codec.modules():
            if hasattr(module, "embed_sum") and hasattr(module, "cluster_usage"):  # Mimi
                module.embed_sum.copy_(torch.randn(module.embed_sum.shape, generator=generator))
                module.cluster_usage.fill_(1.0)
                module._embed = None
            elif isinstance(getattr(module, "embed", None), torch.Tensor) and hasattr(module, "embed_avg"):
                module.embed.copy_(torch.randn(module.embed.shape, generator=generator))
    return codec
