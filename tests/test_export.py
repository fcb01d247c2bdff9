"""`torch.export` and `torch.compile(fullgraph=True)` of every component family (issue 14, "the transformers contract").

Value checks that read tensor data run at the boundary (the pipeline, `validate_inputs`) or in eager mode only, so a
traced forward has no data-dependent branch. Components whose operations still stop the tracer are marked
`xfail(strict=True)` with the op that blocks: the day they trace, the marker fails and must go.

The fullgraph check uses the `eager` backend: graph breaks are found by Dynamo, before any backend runs, so inductor's
compile time (minutes on 2 CPU cores) would add nothing to what is tested here.
"""

from __future__ import annotations

import pytest
import torch
from tiny_components import (
    _audio_inputs,
    _unit_inputs,
    tiny_codec,
    tiny_hifigan_vocoder,
    tiny_mel_vocoder,
    tiny_rvq_codec,
    tiny_speech_lm,
    tiny_unit_encoder,
)
from transformers.utils import ModelOutput


def _lm_inputs():
    return {**_unit_inputs(), "use_cache": False}


def _speech_lm_with_suppressed_ids():
    """As a converted slamkit LM: specials its source lacks are out of scoring and generation."""
    from hf_slm import SpeechLMConfig, SpeechLMForCausalLM

    config = tiny_speech_lm().config
    layout = config.vocab_layout
    suppressed = [layout.bos_token_id, layout.speech_token_id, layout.text_token_id]
    return SpeechLMForCausalLM(SpeechLMConfig(**{**config.to_dict(), "suppressed_token_ids": suppressed}))


_SSL_BLOCK = (
    "SSL front end: `_ssl_features` chooses the masked or the unmasked encoder call from the data "
    "(`bool((lengths < samples).any())`) and captures the layer with a forward hook registered inside forward"
)
_CODEC_BLOCK = (
    "codecs pad a batch to `ceil(max(lengths) / hop)` frames, lengths read from the attention mask "
    "(`_pad_to_frames`: `int(frames.max())`), so the output length depends on the data"
)

#: name -> (model factory, inputs factory, xfail reason for export or None, xfail reason for fullgraph compile or None)
CASES = {
    "speech_lm": (tiny_speech_lm, _lm_inputs, None, None),
    "speech_lm_suppressed_ids": (_speech_lm_with_suppressed_ids, _lm_inputs, None, None),
    "unit_hifigan": (tiny_hifigan_vocoder, _unit_inputs, None, None),
    "unit_mel_vocoder": (tiny_mel_vocoder, _unit_inputs, None, None),
    "unit_encoder_mfcc": (
        lambda: tiny_unit_encoder("mfcc"),
        _audio_inputs,
        None,
        "torchaudio.functional.spectrogram calls torch.jit helpers (`_get_spec_norms`), which Dynamo skips: a graph "
        "break (non-strict torch.export runs them in Python and passes)",
    ),
    "unit_encoder_ssl": (lambda: tiny_unit_encoder("ssl"), _audio_inputs, _SSL_BLOCK, _SSL_BLOCK),
    "rvq_codec": (tiny_rvq_codec, _audio_inputs, _CODEC_BLOCK, _CODEC_BLOCK),
    "codec": (tiny_codec, _audio_inputs, _CODEC_BLOCK, _CODEC_BLOCK),
}


def _tensors(output) -> list[torch.Tensor]:
    values = output.to_tuple() if isinstance(output, ModelOutput) else output
    values = values if isinstance(values, (tuple, list)) else (values,)
    return [v for v in values if torch.is_tensor(v)]


def _assert_same_outputs(traced, eager):
    traced, eager = _tensors(traced), _tensors(eager)
    assert len(traced) == len(eager) > 0
    for t, e in zip(traced, eager):
        torch.testing.assert_close(t, e, rtol=1e-5, atol=1e-5)


def _params(index):
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case[index])) if case[index] else name
        for name, case in CASES.items()
    ]


@pytest.mark.parametrize("name", _params(2))
def test_torch_export_matches_eager(name):
    factory, inputs, _, _ = CASES[name]
    model, kwargs = factory().eval(), inputs()
    with torch.no_grad():
        eager = model(**kwargs)
        exported = torch.export.export(model, (), kwargs)
        _assert_same_outputs(exported.module()(**kwargs), eager)


@pytest.mark.parametrize("name", _params(3))
def test_fullgraph_compile_matches_eager(name):
    factory, inputs, _, _ = CASES[name]
    model, kwargs = factory().eval(), inputs()
    torch._dynamo.reset()
    with torch.no_grad():
        eager = model(**kwargs)
        _assert_same_outputs(torch.compile(model, fullgraph=True, backend="eager")(**kwargs), eager)


@pytest.mark.parametrize("factory", [tiny_hifigan_vocoder, tiny_mel_vocoder])
def test_vocoders_still_check_units_in_eager_mode(factory):
    """The checks left the traced path, not the eager one: a unit out of range is a clear error, before and through
    `validate_inputs` (what a caller of a compiled or exported vocoder runs first)."""
    model = factory()
    bad = torch.tensor([[1, 2, model.config.num_units]])
    with pytest.raises(ValueError, match=r"unit ids must be in \[0, 16\)"):
        model(input_ids=bad)
    with pytest.raises(ValueError, match=r"unit ids must be in \[0, 16\)"):
        model.validate_inputs(bad)
    model.validate_inputs(bad, attention_mask=torch.tensor([[1, 1, 0]]))  # masked padding may hold anything
