"""Pipeline variants: save / load whole, components alone, shared components, adapters, bad folders, tasks."""

from __future__ import annotations

import json
import os
import stat
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel, AutoModelForCausalLM

from hf_slm import PipelineLoadError, SpeechLMPipeline
from hf_slm.pipelines import INDEX_FILE
from tiny_components import tiny_pipeline


def speech(seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    return {"array": wave.astype(np.float32), "sampling_rate": sr}


def state_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pipe = tiny_pipeline()
    path = tmp_path_factory.mktemp("variant") / "tiny-gslm"
    pipe.save_pretrained(path)
    return pipe, path


def test_save_writes_index_and_component_subfolders(saved):
    _, path = saved
    index = json.loads((path / INDEX_FILE).read_text())
    assert index["_class_name"] == "SpeechLMPipeline"
    assert index["speech_tokenizer"] == ["hf_slm", "UnitEncoderModel"]
    assert index["language_model"] == ["hf_slm", "SpeechLMForCausalLM"]
    assert index["vocoder"] == ["hf_slm", "UnitMelVocoder"]
    assert index["tokenizer"] is None and index["adapter"] is None
    for name in ("speech_tokenizer", "language_model", "vocoder"):
        assert (path / name / "model.safetensors").exists()
    assert (path / "feature_extractor" / "preprocessor_config.json").exists()
    assert not list(path.parent.glob(".tiny-gslm.tmp-*")), "temporary folder left behind"


def test_variant_loads_whole_and_equal(saved):
    pipe, path = saved
    loaded = SpeechLMPipeline.from_pretrained(path)
    for name in ("speech_tokenizer", "language_model", "vocoder"):
        assert type(loaded.components[name]) is type(pipe.components[name])
        assert state_equal(loaded.components[name], pipe.components[name]), name
    audio = speech()
    assert [u.tolist() for u in loaded.encode(audio)] == [u.tolist() for u in pipe.encode(audio)]


def test_each_component_loads_alone_with_subfolder(saved):
    pipe, path = saved
    tok = AutoModel.from_pretrained(path, subfolder="speech_tokenizer")
    lm = AutoModelForCausalLM.from_pretrained(path, subfolder="language_model")
    voc = AutoModel.from_pretrained(path, subfolder="vocoder")
    fe = AutoFeatureExtractor.from_pretrained(path, subfolder="feature_extractor")
    assert state_equal(tok, pipe.speech_tokenizer) and state_equal(lm, pipe.language_model)
    assert state_equal(voc, pipe.vocoder)
    assert fe.sampling_rate == pipe.feature_extractor.sampling_rate


def test_tasks_shapes_and_lengths(saved):
    pipe, _ = saved
    audio = [speech(1.0), speech(0.6, seed=1)]
    units = pipe.encode(audio)
    assert [len(u) for u in units] == [49, 29]  # MFCC frames: 1 + (samples - 400) // 320
    assert all(int(u.min()) >= 0 and int(u.max()) < 16 for u in units)
    out = pipe.resynthesize(audio)
    assert out.sampling_rate == 16000
    assert [len(w) for w in out.waveforms] == [len(u) * 320 for u in units]
    cont = pipe.continue_speech(audio[0], max_new_tokens=5, seed=0)
    assert len(cont.units[0]) <= 5 and len(cont.prompt_units[0]) == 49
    nll = pipe.score(audio)
    assert nll.shape == (2,) and bool((nll > 0).all())


def test_missing_component_is_named():
    pipe = tiny_pipeline()
    pipe.register_modules(vocoder=None)
    with pytest.raises(ValueError, match="vocoder"):
        pipe.resynthesize(speech())
    pipe.register_modules(language_model=None)
    with pytest.raises(ValueError, match="language model"):
        pipe.continue_speech(speech())


def test_bad_folders_give_clear_errors(saved, tmp_path):
    with pytest.raises(PipelineLoadError, match="pipeline_index.json is missing"):
        SpeechLMPipeline.from_pretrained(tmp_path)
    with pytest.raises(PipelineLoadError, match="does not exist"):
        SpeechLMPipeline.from_pretrained(str(tmp_path / "nowhere"))
    _, path = saved
    broken = tmp_path / "broken"
    broken.mkdir()
    index = json.loads((path / INDEX_FILE).read_text())
    (broken / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(PipelineLoadError, match="feature_extractor"):
        SpeechLMPipeline.from_pretrained(broken)
    index["vocoder"] = ["hf_slm", "NoSuchVocoder"]
    (path.parent / "bad-class").mkdir()
    (path.parent / "bad-class" / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(PipelineLoadError):
        SpeechLMPipeline.from_pretrained(path.parent / "bad-class")


def _variant_sharing_vocoder(path, tmp_path):
    """A saved variant whose index points at the vocoder of the variant saved at `path`."""
    variant = tiny_pipeline()
    variant.register_modules(vocoder=None)
    out = variant.save_pretrained(tmp_path / "shares-vocoder")
    index = json.loads((out / INDEX_FILE).read_text())
    index["vocoder"] = {"library": "hf_slm", "class": "UnitMelVocoder", "repo": str(path), "subfolder": "vocoder"}
    (out / INDEX_FILE).write_text(json.dumps(index))
    return out


def test_shared_component_by_reference(saved, tmp_path):
    """A variant whose index points at another variant's vocoder loads it without a copy of its weights."""
    pipe, path = saved
    out = _variant_sharing_vocoder(path, tmp_path)
    loaded = SpeechLMPipeline.from_pretrained(out)
    assert not (out / "vocoder").exists()
    assert state_equal(loaded.vocoder, pipe.vocoder)
    resaved = loaded.save_pretrained(tmp_path / "resaved")
    repo = json.loads((resaved / INDEX_FILE).read_text())["vocoder"]["repo"]  # relative to the resaved folder
    assert repo.startswith("../") and (resaved / repo).resolve() == path.resolve()
    assert not (resaved / "vocoder").exists()


def test_reference_components_saves_references_only_to_equal_components(saved, tmp_path):
    """`reference_components`: equal components are saved as references (followed to the variant holding the
    weights); a component that differs from the variant's is refused by name, before anything is written."""
    pipe, path = saved
    other = tiny_pipeline()
    other.reference_components(path, ["vocoder", "feature_extractor"])
    out = other.save_pretrained(tmp_path / "referencing")
    index = json.loads((out / INDEX_FILE).read_text())
    assert index["vocoder"]["subfolder"] == "vocoder" and (out / index["vocoder"]["repo"]).resolve() == path.resolve()
    assert not (out / "vocoder").exists() and not (out / "feature_extractor").exists()
    assert (out / "language_model" / "model.safetensors").exists()
    assert state_equal(SpeechLMPipeline.from_pretrained(out).vocoder, pipe.vocoder)
    chained = tiny_pipeline()
    chained.reference_components(out, ["vocoder"])  # a reference in `out`: it points at the weights' owner
    chained_out = chained.save_pretrained(tmp_path / "chained")
    repo = json.loads((chained_out / INDEX_FILE).read_text())["vocoder"]["repo"]
    assert (chained_out / repo).resolve() == path.resolve()
    changed = tiny_pipeline()
    with torch.no_grad():
        next(changed.vocoder.parameters()).add_(0.5)
    with pytest.raises(ValueError, match="cannot reference component 'vocoder' of .*tensor\\(s\\) differ"):
        changed.reference_components(path, ["vocoder"])
    assert state_equal(SpeechLMPipeline.from_pretrained(changed.save_pretrained(tmp_path / "copy")).vocoder,
                       changed.vocoder)  # fmt: skip


def test_assigning_a_component_replaces_it_for_decoding_and_saving(saved, tmp_path):
    """`pipe.vocoder = other` (as in diffusers): decoding speaks through the new vocoder, a save writes its weights
    (not the reference to the variant the old one was shared from), and a vocoder for other units is refused."""
    from tiny_components import NUM_UNITS, tiny_hifigan_vocoder, tiny_mel_vocoder

    loaded = SpeechLMPipeline.from_pretrained(_variant_sharing_vocoder(saved[1], tmp_path))
    replacement = tiny_hifigan_vocoder()
    loaded.vocoder = replacement
    units = [torch.arange(12) % NUM_UNITS]
    with torch.no_grad():
        expected = replacement(input_ids=units[0][None]).waveform[0].numpy()
    np.testing.assert_allclose(loaded.decode(units)[0], expected, atol=1e-6)
    resaved = loaded.save_pretrained(tmp_path / "resaved")
    assert json.loads((resaved / INDEX_FILE).read_text())["vocoder"] == ["hf_slm", "UnitHifiGanVocoder"]
    assert state_equal(SpeechLMPipeline.from_pretrained(resaved).vocoder, replacement)
    wrong = tiny_mel_vocoder()
    wrong.config.num_units = NUM_UNITS + 5
    with pytest.raises(PipelineLoadError, match="units.num_units"):
        loaded.vocoder = wrong
    assert loaded.vocoder is replacement and loaded.components["vocoder"] is replacement


def test_save_is_atomic_and_keeps_previous_variant(saved, tmp_path):
    pipe, _ = saved
    target = pipe.save_pretrained(tmp_path / "variant")
    before = (target / "language_model" / "model.safetensors").read_bytes()

    class ExplodingVocoder(type(pipe.vocoder)):
        def save_pretrained(self, *args, **kwargs):
            raise OSError("disk full")

    broken = tiny_pipeline()
    broken.register_modules(vocoder=ExplodingVocoder(pipe.vocoder.config))
    with pytest.raises(OSError, match="disk full"):
        broken.save_pretrained(target)
    assert (target / "language_model" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variant"], "temporary folders left behind"


def test_adapter_variant_round_trip(saved, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    pipe, _ = saved
    lm = tiny_pipeline().language_model
    peft_lm = get_peft_model(lm, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    variant = tiny_pipeline()
    variant.register_modules(language_model=peft_lm)
    out = variant.save_pretrained(tmp_path / "instruct")
    index = json.loads((out / INDEX_FILE).read_text())
    assert index["adapter"] == ["peft", "PeftModel"] and (out / "adapter" / "adapter_config.json").exists()
    loaded = SpeechLMPipeline.from_pretrained(out)
    assert isinstance(loaded.language_model, PeftModel)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.language_model(input_ids=ids).logits, peft_lm.eval()(input_ids=ids).logits)


def test_decode_multi_codebook_codes_with_a_codec_vocoder():
    """Codec-LM variants decode [codebooks, frames] items; padding along frames must not change an item."""
    from tiny_components import COMPONENTS

    factory = next(f for name, (f, _, _) in COMPONENTS.items() if "rvq" in name)
    pipe = tiny_pipeline()
    pipe.register_modules(vocoder=factory().eval())
    q, size = pipe.vocoder.config.num_codebooks, pipe.vocoder.config.codebook_size
    g = torch.Generator().manual_seed(0)
    long, short = torch.randint(0, size, (q, 12), generator=g), torch.randint(0, size, (q, 7), generator=g)
    batched = pipe.decode([long, short])
    alone = pipe.decode([short])[0]
    assert len(batched[1]) == len(alone)
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)
    with pytest.raises(ValueError, match="all"):
        pipe.decode([long, short[0]])


def test_saved_files_get_a_plain_writes_permissions(saved, tmp_path):
    """mkdtemp (0700) and safetensors' own atomic write (0600) must not make a variant private: the modes are those
    of a plain mkdir / open under the umask."""
    pipe, _ = saved
    previous = os.umask(0o022)
    try:
        for umask, dir_mode, file_mode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
            os.umask(umask)
            out = pipe.save_pretrained(tmp_path / f"variant-{umask:o}")
            entries = [out, *out.rglob("*")]
            assert (out / "language_model" / "model.safetensors") in entries
            modes = {str(e.relative_to(tmp_path)): stat.S_IMODE(e.stat().st_mode) for e in entries}
            expected = {str(e.relative_to(tmp_path)): dir_mode if e.is_dir() else file_mode for e in entries}
            assert modes == expected
    finally:
        os.umask(previous)


def test_model_card_of_a_local_save_names_its_folder(saved, tmp_path):
    pipe, _ = saved
    card = (pipe.save_pretrained(tmp_path / "my-speech-lm") / "README.md").read_text()
    assert "<variant>" not in card and "# my-speech-lm" in card and "model_name: my-speech-lm" in card
    card = (pipe.save_pretrained(tmp_path / "other", repo_id="org/named") / "README.md").read_text()
    assert "# named" in card and 'from_pretrained("org/named")' in card


def _ends_at_once(pipe):
    """The pipeline's LM with a head whose bias makes end-of-sequence win every step, whatever the input."""
    lm = pipe.language_model
    head = lm.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[lm.config.vocab_layout.eos_token_id] = 1e4
    lm.set_output_embeddings(biased)
    return pipe


def test_empty_continuation_warns_and_min_new_tokens_prevents_it():
    from hf_slm.pipelines import EmptyContinuationWarning

    pipe = _ends_at_once(tiny_pipeline())
    with pytest.warns(EmptyContinuationWarning, match=r"step 0.*min_new_tokens"):
        out = pipe.continue_speech(speech(), max_new_tokens=8, seed=0)
    assert [u.numel() for u in out.units] == [0]
    assert len(out.waveforms) == 1  # the prompt is still vocoded
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyContinuationWarning)
        out = pipe.continue_speech(speech(), max_new_tokens=8, min_new_tokens=3, seed=0)
    assert out.units[0].numel() >= 3


def _readme_block(heading: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_recipe_for_assembling_a_variant_runs(hub_server, tmp_path, monkeypatch):
    """The README's "Assembling a variant from parts" code, as written, on tiny parts laid out as the training
    examples write them, pushed to the loopback Hub and loaded back from it."""
    from conftest import HUB_USER
    from tiny_components import tiny_speech_lm, tiny_unit_encoder

    from hf_slm.models.unit_encoder import SpeechFeatureExtractor

    lm = tiny_speech_lm(seed=3)
    lm.save_pretrained(tmp_path / "runs" / "my_lm")  # examples/pretraining's output_dir ...
    tiny_unit_encoder().save_pretrained(tmp_path / "runs" / "my_lm" / "speech_tokenizer")  # ... and its tokenizer
    SpeechFeatureExtractor().save_pretrained(tmp_path / "runs" / "my_lm" / "speech_tokenizer")
    other = tiny_pipeline()
    other.save_pretrained(tmp_path / "other-variant")
    code = _readme_block("## Assembling a variant from parts")
    assert "SpeechLMPipeline(" in code and "save_pretrained" in code and "push_to_hub" in code
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code.replace('"me/', f'"{HUB_USER}/'), "README.md", "exec"), namespace)
    assert json.loads((tmp_path / "my-slm" / INDEX_FILE).read_text())["vocoder"] == ["hf_slm", "UnitMelVocoder"]
    pulled = namespace["pipe"]
    assert pulled.name_or_path == f"{HUB_USER}/my-slm"
    assert state_equal(pulled.language_model, lm) and state_equal(pulled.vocoder, other.vocoder)
