"""Streaming vocoding: chunked synthesis with context equals full-utterance synthesis for local vocoders (HiFi-GAN,
the mel vocoder's inverse-STFT head, SEANet codec decoders, a wrapped DAC), approximates it within a measured
spectral tolerance for Griffin-Lim, and the pipeline streams numpy chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_slm  # noqa: F401
from hf_slm import UnitHifiGanVocoder, UnitHifiGanVocoderConfig, UnitMelVocoder, UnitMelVocoderConfig
from hf_slm.models.unit_vocoder import LogMelSpectrogram
from hf_slm.streaming import receptive_field, stream_vocode
from tiny_components import (
    NUM_UNITS,
    tiny_codec,
    tiny_hifigan_vocoder,
    tiny_mel_vocoder,
    tiny_pipeline,
    tiny_rvq_codec,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _units(count, vocab=NUM_UNITS, seed=0, levels=None):
    generator = torch.Generator().manual_seed(seed)
    shape = (count,) if levels is None else (levels, count)
    return torch.randint(0, vocab, shape, generator=generator)


def _full(vocoder, units, **kwargs):
    with torch.no_grad():
        out = vocoder(input_ids=units[None], **kwargs)
    return out.waveform[0, : int(out.waveform_lengths[0])]


# ---------------------------------------------------------------------------------------------------- exact cases
def _local_vocoders():
    return {
        "unit_hifigan": (tiny_hifigan_vocoder(), None),
        "unit_mel_vocoder_istft": (tiny_mel_vocoder(waveform_head="istft", istft_num_layers=1), None),
        "rvq_codec_causal": (tiny_rvq_codec(), 3),
        "rvq_codec_centred": (tiny_rvq_codec(causal=False), 3),
        "codec_dac": (tiny_codec(), 2),
    }


@pytest.mark.parametrize("name", sorted(_local_vocoders()))
def test_stream_equals_full_synthesis_once_the_context_covers_the_receptive_field(name):
    vocoder, levels = _local_vocoders()[name]
    vocab = NUM_UNITS if levels is None else vocoder.config.codebook_size
    context, lookahead = receptive_field(vocoder)
    assert context >= 1
    units = _units(45, vocab, levels=levels)
    full = _full(vocoder, units)
    chunks = list(stream_vocode(vocoder, units, chunk_units=8, overlap_units=context, lookahead_units=lookahead))
    assert len(chunks) == 6 and [c.numel() for c in chunks[:-1]] == [8 * vocoder.config.hop_length] * 5
    torch.testing.assert_close(torch.cat(chunks), full, atol=1e-5, rtol=1e-4)
    # and the test can fail: without context the chunk seams differ
    seamed = torch.cat(list(stream_vocode(vocoder, units, chunk_units=8, overlap_units=0, lookahead_units=0)))
    assert seamed.shape == full.shape and (seamed - full).abs().max() > 1e-3


def test_causal_codec_needs_no_lookahead_and_centred_one_does():
    assert receptive_field(tiny_rvq_codec())[1] == 0
    assert receptive_field(tiny_rvq_codec(causal=False))[1] > 0


def test_stream_with_durations_equals_full_synthesis_of_deduplicated_units():
    vocoder = tiny_hifigan_vocoder()
    units = _units(20, seed=3)
    durations = torch.randint(1, 4, (20,), generator=torch.Generator().manual_seed(1))
    full = _full(vocoder, units, durations=durations[None])
    context, lookahead = receptive_field(vocoder)  # in frames; every unit lasts >= 1 frame, so enough in units too
    streamed = torch.cat(list(stream_vocode(vocoder, units, chunk_units=5, overlap_units=context,
                                            lookahead_units=lookahead, durations=durations)))
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-4)


def test_stream_with_a_duration_predictor_trims_by_the_predicted_durations():
    torch.manual_seed(0)
    config = UnitHifiGanVocoderConfig(
        num_units=NUM_UNITS, embedding_dim=16, upsample_rates=(10, 8, 4), upsample_kernel_sizes=(20, 16, 8),
        upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),),
        use_duration_predictor=True,
    )
    vocoder = UnitHifiGanVocoder(config).eval()
    units = _units(24, seed=4)
    chunks = list(stream_vocode(vocoder, units, chunk_units=6, overlap_units=12))
    full = _full(vocoder, units)
    assert torch.cat(chunks).shape == full.shape  # the predicted durations of each chunk's own units are kept


# ---------------------------------------------------------------------------------------------------- Griffin-Lim
def test_griffin_lim_stream_matches_full_synthesis_in_magnitude_within_tolerance():
    """Griffin-Lim rebuilds phase iteratively over its whole input, so chunks are not sample-exact: with 10 units of
    context and a one-unit cross-fade the log-mel of the stream stays within 0.05 (mean |diff|) of the full
    synthesis away from the edges, against ~0.2 between the full synthesis and the mel it was asked to invert."""
    torch.manual_seed(0)
    vocoder = UnitMelVocoder(
        UnitMelVocoderConfig(num_units=NUM_UNITS, hidden_size=32, num_unit_layers=1, num_mel_layers=1,
                             griffin_lim_iters=16)
    ).eval()
    units = _units(60, seed=5)
    full = _full(vocoder, units)
    streamed = torch.cat(list(stream_vocode(vocoder, units, chunk_units=15, overlap_units=10, crossfade_samples=320)))
    assert streamed.shape == full.shape
    mel = LogMelSpectrogram(n_fft=1024, hop_length=160)
    full_mel, stream_mel = mel(full)[0], mel(streamed)[0]
    target = vocoder.units_to_mel(units[None])[0][0].detach()
    inner = slice(10, -10)  # 50 ms from each edge
    stream_error = (stream_mel - full_mel)[inner].abs().mean()
    vocoder_error = (full_mel[: target.shape[0]] - target)[inner].abs().mean()
    assert stream_error < 0.05 and stream_error < 0.25 * vocoder_error, (stream_error, vocoder_error)


# ---------------------------------------------------------------------------------------------------- pipeline / errors
def test_pipeline_stream_decode_yields_numpy_chunks_that_join_into_decode():
    pipe = tiny_pipeline("hifigan")
    units = _units(30, seed=6)
    context, lookahead = receptive_field(pipe.vocoder)
    chunks = list(pipe.stream_decode(units, chunk_units=7, overlap_units=context, lookahead_units=lookahead))
    assert all(isinstance(c, np.ndarray) and c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert len(chunks) == 5
    np.testing.assert_allclose(np.concatenate(chunks), pipe.decode([units])[0], atol=1e-5)


def test_pipeline_stream_decode_streams_codec_codes():
    pipe = tiny_pipeline("hifigan")
    codec = tiny_rvq_codec()
    pipe.register_modules(vocoder=codec)
    codes = _units(20, vocab=16, levels=3, seed=7)
    joined = np.concatenate(list(pipe.stream_decode(codes, chunk_units=6, overlap_units=9, lookahead_units=0)))
    with torch.no_grad():
        np.testing.assert_allclose(joined, codec.decode(codes[None]).waveform[0].numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(chunk_units=0), "chunk_units"),
        (dict(overlap_units=-1), "overlap_units"),
        (dict(crossfade_samples=400, lookahead_units=1), "lookahead_units >= 2"),
        (dict(f0=torch.ones(1, 10)), "f0"),
        (dict(units=torch.zeros(1, 2, 3, dtype=torch.long)), "one utterance"),
        (dict(units=torch.zeros(0, dtype=torch.long)), "empty"),
        (dict(units=torch.zeros(4)), "integer"),
        (dict(durations=torch.ones(3)), "durations"),
    ],
)
def test_stream_vocode_rejects_bad_arguments_before_the_first_chunk(kwargs, message):
    arguments = dict(units=torch.zeros(4, dtype=torch.long)) | kwargs
    with pytest.raises(ValueError, match=message):
        stream_vocode(tiny_hifigan_vocoder(), **arguments)


def test_stream_vocode_names_training_mode_and_non_vocoders():
    torch.manual_seed(0)
    mel = UnitMelVocoder(UnitMelVocoderConfig(num_units=NUM_UNITS, hidden_size=32, griffin_lim_iters=2)).train()
    with pytest.raises(ValueError, match="eval"):
        next(stream_vocode(mel, torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="hop_length"):
        stream_vocode(torch.nn.Linear(2, 2), torch.zeros(4, dtype=torch.long))
    pipe = tiny_pipeline()
    pipe.register_modules(vocoder=None)
    with pytest.raises(ValueError, match="vocoder"):
        pipe.stream_decode(torch.zeros(4, dtype=torch.long))
