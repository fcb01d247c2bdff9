"""The family names before hf_slm 0.2 still work for one release, with a FutureWarning naming the new one.

- Checkpoints: `tests/fixtures/legacy_default_pipeline/` holds the JSON files of the embedded default variant as it
  was saved before the rename (`KMeansUnitTokenizer`, `hf_slm_kmeans_unit_tokenizer`, old `auto_map` files). With
  today's weights next to them, that folder loads as a pipeline and component by component, and gives the same
  units, logits and waveform as today's default.
- Code: the old import paths and class names resolve to the renamed classes.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForCausalLM

import hf_slm
from hf_slm.data import EspeakSynthesizer
from hf_slm.pipelines import RENAMED_CLASSES, SpeechLMPipeline
from tiny_components import COMPONENTS

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy_default_pipeline"
DEFAULT = Path(hf_slm.DEFAULT_PIPELINE)
#: What the rename changed in a component's JSON: kept from the fixture, every other key is today's.
LEGACY_NAME_KEYS = ("model_type", "architectures", "auto_map", "feature_extractor_type")


@pytest.fixture(scope="module")
def legacy_default(tmp_path_factory) -> Path:
    """The default variant as saved before the rename: the old JSON files plus today's weights. The vocoder's files
    had no renamed name and are today's (its GAN-trained head changed its config since); in the others only the
    names are the old ones, the shapes and settings are today's (the default moved to 500 units since)."""
    folder = tmp_path_factory.mktemp("legacy") / "default"
    shutil.copytree(FIXTURE, folder)
    for legacy_file in folder.glob("*/*.json"):
        current = DEFAULT / legacy_file.parent.name / legacy_file.name
        old = json.loads(legacy_file.read_text())
        new = {k: v for k, v in json.loads(current.read_text()).items() if k not in LEGACY_NAME_KEYS}
        legacy_file.write_text(json.dumps({**{k: old[k] for k in LEGACY_NAME_KEYS if k in old}, **new}))
    for weights in DEFAULT.glob("*/model.safetensors"):
        (folder / weights.parent.name).mkdir(exist_ok=True)
        shutil.copy(weights, folder / weights.parent.name / weights.name)
    shutil.copy(DEFAULT / "vocoder" / "config.json", folder / "vocoder" / "config.json")
    return folder


@pytest.fixture(scope="module")
def speech() -> dict:
    utterance = EspeakSynthesizer("en-us").synthesize("the red dog runs home")
    return {"array": utterance.waveform, "sampling_rate": utterance.sampling_rate}


def test_fixture_has_the_old_names():
    """Guards the fixture itself: it must keep what the test claims to load."""
    config = json.loads((FIXTURE / "speech_tokenizer" / "config.json").read_text())
    index = json.loads((FIXTURE / "pipeline_index.json").read_text())
    assert config["model_type"] == "hf_slm_kmeans_unit_tokenizer" and config["architectures"] == ["KMeansUnitTokenizer"]
    assert index["speech_tokenizer"] == ["hf_slm", "KMeansUnitTokenizer"]


def test_legacy_pipeline_loads_with_warning_and_gives_the_same_outputs(legacy_default, speech):
    with pytest.warns(FutureWarning) as record:
        legacy = SpeechLMPipeline.from_pretrained(legacy_default)
    messages = [str(warning.message) for warning in record]
    assert any("'KMeansUnitTokenizer' was renamed 'UnitEncoderModel'" in m for m in messages), messages  # the index
    assert any("'hf_slm_kmeans_unit_tokenizer' was renamed 'hf_slm_unit_encoder'" in m for m in messages), messages
    current = SpeechLMPipeline.from_pretrained("default")
    assert type(legacy.speech_tokenizer) is hf_slm.UnitEncoderModel
    assert legacy.speech_tokenizer.config.model_type == "hf_slm_unit_encoder"

    outputs = []
    for pipe in (legacy, current):
        torch.manual_seed(0)  # Griffin-Lim starts from random phases
        outputs.append(pipe.resynthesize(speech))
    (old, new) = outputs
    assert len(old.units[0]) > 50
    assert torch.equal(torch.as_tensor(old.units[0]), torch.as_tensor(new.units[0]))
    torch.testing.assert_close(torch.as_tensor(old.waveforms[0]), torch.as_tensor(new.waveforms[0]), rtol=0, atol=0)

    ids = torch.arange(0, 40)[None] % legacy.language_model.config.num_units
    with torch.no_grad():
        torch.testing.assert_close(legacy.language_model(input_ids=ids).logits,
                                   current.language_model(input_ids=ids).logits, rtol=0, atol=0)  # fmt: skip


def test_legacy_components_load_through_the_auto_classes(legacy_default, speech, tmp_path):
    with pytest.warns(FutureWarning, match="hf_slm_kmeans_unit_tokenizer"):
        config = AutoConfig.from_pretrained(legacy_default, subfolder="speech_tokenizer")
    assert type(config) is hf_slm.UnitEncoderConfig and config.architectures == ["UnitEncoderModel"]
    with pytest.warns(FutureWarning, match="renamed 'hf_slm_unit_encoder'"):
        tokenizer = AutoModel.from_pretrained(legacy_default, subfolder="speech_tokenizer").eval()
    with pytest.warns(FutureWarning, match="hf_slm_kmeans_unit_tokenizer"):
        direct = hf_slm.UnitEncoderModel.from_pretrained(legacy_default / "speech_tokenizer").eval()
    current = AutoModel.from_pretrained(DEFAULT, subfolder="speech_tokenizer").eval()
    feature_extractor = AutoFeatureExtractor.from_pretrained(legacy_default, subfolder="feature_extractor")
    assert type(feature_extractor) is hf_slm.SpeechFeatureExtractor

    inputs = feature_extractor(speech["array"], sampling_rate=speech["sampling_rate"], return_tensors="pt")
    with torch.no_grad():
        expected = current(**inputs).units
        assert expected.shape[-1] > 50
        for model in (tokenizer, direct):
            assert type(model) is hf_slm.UnitEncoderModel
            assert torch.equal(model(**inputs).units, expected)

    lm = AutoModelForCausalLM.from_pretrained(legacy_default, subfolder="language_model")
    vocoder = AutoModel.from_pretrained(legacy_default, subfolder="vocoder")
    assert type(lm) is hf_slm.SpeechLMForCausalLM and type(vocoder) is hf_slm.UnitMelVocoder

    tokenizer.save_pretrained(tmp_path / "resaved")  # what is saved from now on carries the new names only
    saved = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert saved["model_type"] == "hf_slm_unit_encoder" and saved["architectures"] == ["UnitEncoderModel"]
    assert saved["auto_map"]["AutoModel"] == "modeling_unit_encoder.UnitEncoderModel"


def main_output(model, inputs) -> torch.Tensor:
    """The tensor that identifies a component's behaviour: units, codes, logits or waveform."""
    with torch.no_grad():
        out = model(**inputs)
    for name in ("units", "codes", "logits", "waveform"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise AssertionError(f"no known output field in {type(out).__name__}")


@pytest.mark.parametrize(
    ("component", "old_type", "old_architecture"),
    [("unit_hifigan", "hf_slm_unit_hifigan", "UnitHifiGanVocoder"), ("codec", "hf_slm_codec_tokenizer", "CodecTokenizer")],
)
def test_renamed_model_types_load_with_warning(component, old_type, old_architecture, tmp_path):
    factory, _, make_inputs = COMPONENTS[component]
    model = factory()
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    config.update(model_type=old_type, architectures=[old_architecture])  # as hf_slm 0.1 wrote it
    config_file.write_text(json.dumps(config))

    with pytest.warns(FutureWarning, match=f"'{old_type}' was renamed '{model.config.model_type}'"):
        loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model) and loaded.config.model_type == model.config.model_type
    assert loaded.config.architectures == [type(model).__name__]
    inputs = make_inputs()
    torch.testing.assert_close(main_output(loaded, inputs), main_output(model, inputs), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("hf_slm.models.unit_tokenizer", "KMeansUnitTokenizer", "UnitEncoderModel"),
        ("hf_slm.models.unit_tokenizer", "KMeansUnitTokenizerConfig", "UnitEncoderConfig"),
        ("hf_slm.models.unit_tokenizer", "KMeansUnitTokenizerOutput", "UnitEncoderOutput"),
        ("hf_slm.models.unit_tokenizer", "SpeechFeatureExtractor", "SpeechFeatureExtractor"),
        ("hf_slm.models.codec_tokenizer", "CodecTokenizer", "CodecModel"),
        ("hf_slm.models.codec_tokenizer", "CodecTokenizerConfig", "CodecConfig"),
        ("hf_slm.models.codec_tokenizer", "CodecOutput", "CodecEncoderOutput"),  # the old module keeps old meanings
        ("hf_slm.models.codec_tokenizer", "CodecModelOutput", "CodecOutput"),
        ("hf_slm.models.codec_tokenizer", "RVQCodec", "RVQCodecModel"),
        ("hf_slm", "KMeansUnitTokenizer", "UnitEncoderModel"),
        ("hf_slm", "KMeansUnitTokenizerConfig", "UnitEncoderConfig"),
        ("hf_slm", "CodecTokenizer", "CodecModel"),
        ("hf_slm", "CodecModelOutput", "CodecOutput"),
        ("hf_slm", "RVQCodec", "RVQCodecModel"),
    ],
)
def test_old_import_paths_warn_and_resolve_to_the_new_classes(module, old, new):
    with pytest.warns(FutureWarning, match=new):
        value = getattr(importlib.import_module(module), old)
    assert value is getattr(hf_slm, new)


def test_old_from_import_statement_warns():
    with pytest.warns(FutureWarning, match="KMeansUnitTokenizer was renamed UnitEncoderModel"):
        from hf_slm.models.unit_tokenizer import KMeansUnitTokenizer
    assert KMeansUnitTokenizer is hf_slm.UnitEncoderModel
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        importlib.import_module("hf_slm.models.codec_tokenizer").NotAName  # noqa: B018


def test_renamed_index_classes_exist_under_their_new_names():
    for old, new in RENAMED_CLASSES["hf_slm"].items():
        assert new in hf_slm.__all__ and old not in hf_slm.__all__
        with pytest.warns(FutureWarning, match=new):
            assert getattr(hf_slm, old) is getattr(hf_slm, new)
