"""Vocal tract length normalisation of the MFCC unit encoder (`UnitEncoderConfig.vtln_warps`): the warped mel bank,
the warp search per utterance and per speaker, fitting, ABX with speaker adaptation and the CLI, on espeak-ng voices
whose formants differ (en-us+f2 / f3 are higher voices than en-us and en-us+m3)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import datasets
import pytest
import torch

from hf_slm.cli import main
from hf_slm.data import synthesize_dataset
from hf_slm.evaluation.abx import build_abx_items, evaluate_abx
from hf_slm.models.unit_encoder import DEFAULT_VTLN_WARPS, SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.models.unit_encoder.modeling_unit_encoder import warp_mel_bank
from hf_slm.training.kmeans import collect_features, dataset_warp_factors, fit_unit_tokenizer_on_dataset

VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-us+f3")
HIGH, LOW = ("en-us+f2", "en-us+f3"), ("en-us", "en-us+m3")
TEXTS = ["the cat sleeps on the mat", "a bird sings in the tall tree", "we read books about ships and stars",
         "my father likes hot soup at noon", "she sold seven blue cups", "put the big red box by the door"]  # fmt: skip


def vtln_config(**kwargs) -> UnitEncoderConfig:
    return UnitEncoderConfig(num_units=24, utterance_normalization=True, vtln_warps=list(DEFAULT_VTLN_WARPS), **kwargs)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Every text in every voice (24 utterances, ~40 s)."""
    return synthesize_dataset(TEXTS, voices=VOICES, assignment="product", show_progress=False,
                              cache_dir=tmp_path_factory.mktemp("speech"))  # fmt: skip


@pytest.fixture(scope="module")
def fitted(speech):
    tokenizer = UnitEncoderModel(vtln_config()).eval()
    fit_unit_tokenizer_on_dataset(tokenizer, speech, SpeechFeatureExtractor(), max_frames=None, show_progress=False)
    return tokenizer


def spoken(voices, texts=("bat", "the bird sat on a mat"), rate=175) -> dict:
    """Feature-extractor inputs of every text in every voice (voice-major)."""
    from hf_slm.data import EspeakSynthesizer

    speech = [EspeakSynthesizer(voice=voice, rate=rate).synthesize(text) for voice in voices for text in texts]
    return SpeechFeatureExtractor()([s.waveform for s in speech], sampling_rate=speech[0].sampling_rate,
                                    return_tensors="pt")  # fmt: skip


# ---------------------------------------------------------------------------------------------------- the mel bank
def test_warped_bank_moves_each_filter_by_the_warp_and_warp_one_is_the_plain_bank():
    bank = UnitEncoderModel(UnitEncoderConfig()).mfcc.MelSpectrogram.mel_scale.fb.double()  # [201 bins, 40 bands]
    warped = warp_mel_bank(bank, torch.tensor([0.85, 1.0, 1.15]))
    assert warped.shape == (3, *bank.shape)
    assert torch.equal(warped[1], bank)
    peaks = bank.argmax(0).double()
    for warp, row in ((0.85, warped[0]), (1.15, warped[2])):
        moved = row.argmax(0).double()
        band = (peaks > 10) & (peaks / warp < 0.75 * 200 / max(warp, 1))  # below the knee: the linear part
        # the filter that reads frequency f now reads f / warp: a higher voice (warp < 1) is read higher up
        assert torch.all((moved[band] - peaks[band] / warp).abs() <= 1.0), (warp, moved[band], peaks[band] / warp)
    assert torch.all(warped >= 0) and torch.all(warped[:, -1] <= bank.max())


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"vtln_warps": [0.9, 1.1]}, "must hold 1.0"),
        ({"vtln_warps": [1.0, 0.9]}, "strictly increasing"),
        ({"vtln_warps": [0.4, 1.0]}, r"\[0.5, 2.0\], got 0.4"),
        ({"vtln_warps": [1.0]}, "at least 2"),
        ({"vtln_warps": "1.0,1.1"}, "at least 2"),
        ({"vtln_prior_weight": -1.0}, "vtln_prior_weight"),
        ({"frontend": "ssl", "vtln_warps": [0.9, 1.0]}, "frontend='mfcc'"),
        ({"vtln_tokenization": "unwarped"}, "is for a tokenizer fitted with vtln_warps"),
        ({"vtln_warps": [0.9, 1.0], "vtln_tokenization": "none"}, r"one of \('search', 'unwarped'\)"),
    ],
)
def test_config_refuses_bad_vtln_settings(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        UnitEncoderConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------- the search
def test_higher_voices_are_warped_down_and_speaker_groups_share_the_pooled_warp(fitted):
    inputs = spoken(VOICES, texts=("the bird sat on a mat", "a man has a red hat"))
    speakers = [voice for voice in VOICES for _ in range(2)]
    per_utterance = fitted.estimate_warp_factors(**inputs)
    mean = {voice: float(per_utterance[[s == voice for s in speakers]].mean()) for voice in VOICES}
    assert max(mean[v] for v in HIGH) < min(mean[v] for v in LOW), mean
    assert max(mean[v] for v in HIGH) < 1.0, mean

    # pooled: one warp per speaker, the argmin of the speaker's summed distortions over its frames, plus the prior
    distortions, frames = fitted.warp_distortions(**inputs)
    pooled = fitted.choose_warp_factors(distortions, frames, groups=speakers)
    grid = torch.tensor(DEFAULT_VTLN_WARPS, dtype=torch.float64)
    for voice in VOICES:
        rows = torch.tensor([s == voice for s in speakers])
        assert len(set(pooled[rows].tolist())) == 1
        score = distortions[rows].sum(0) / frames[rows].sum() + fitted.config.vtln_prior_weight * grid.log() ** 2
        assert float(pooled[rows][0]) == float(grid[score.argmin()])

    # forward: searched per utterance by default, or the warps given; reported in the output
    out = fitted(**inputs)
    assert torch.equal(out.warp_factors, per_utterance.float())
    given = fitted(**inputs, warp_factors=pooled)
    assert torch.equal(given.warp_factors, pooled.float())
    with pytest.raises(ValueError, match=r"one per utterance \(8\) or one for all, got 3"):
        fitted(**inputs, warp_factors=[1.0, 0.9, 1.1])
    with pytest.raises(ValueError, match=r"must lie in \[0.5, 2.0\]"):
        fitted(**inputs, warp_factors=3.0)
    with pytest.raises(ValueError, match=r"groups: one label per utterance \(8\), got 2"):
        fitted.choose_warp_factors(distortions, frames, groups=["a", "b"])


def test_warp_one_tokenises_as_the_unwarped_encoder_and_a_plain_encoder_refuses_the_search(fitted, tmp_path):
    plain = UnitEncoderModel(UnitEncoderConfig(num_units=24, utterance_normalization=True)).eval()
    plain.load_state_dict(fitted.state_dict())
    inputs = spoken(["en-us+f2"])
    assert torch.equal(fitted(**inputs, warp_factors=1.0).units, plain(**inputs).units)
    assert plain(**inputs).warp_factors is None
    with pytest.raises(ValueError, match="has no vtln_warps"):
        plain.warp_distortions(**inputs)
    # the grid and prior are saved with the centroids
    fitted.save_pretrained(tmp_path)
    loaded = UnitEncoderModel.from_pretrained(tmp_path)
    assert loaded.config.vtln_warps == list(DEFAULT_VTLN_WARPS) and loaded.config.vtln_prior_weight == 0.0
    assert torch.equal(loaded(**inputs).units, fitted(**inputs).units)


def test_unwarped_tokenization_reads_speech_at_warp_one_with_the_same_fitted_codebook(speech, fitted, tmp_path):
    """`vtln_tokenization="unwarped"`: the fit still searches warps (same centroids as a searching tokenizer's), but
    tokenising reads every utterance at warp 1.0 unless warps are given; the setting is saved."""
    unwarped = UnitEncoderModel(vtln_config(vtln_tokenization="unwarped")).eval()
    fit_unit_tokenizer_on_dataset(unwarped, speech, SpeechFeatureExtractor(), max_frames=None, show_progress=False)
    assert torch.equal(unwarped.cluster_centers, fitted.cluster_centers)
    inputs = spoken(["en-us+f2", "en-us"])
    out = unwarped(**inputs)
    assert out.warp_factors is None
    assert torch.equal(out.units, fitted(**inputs, warp_factors=1.0).units)
    searched = fitted(**inputs)
    assert bool((searched.warp_factors != 1.0).any())  # so the two readings differ here
    assert not torch.equal(out.units, searched.units)
    given = unwarped(**inputs, warp_factors=searched.warp_factors)  # explicit warps are still honoured
    assert torch.equal(given.units, searched.units)
    assert torch.equal(unwarped.estimate_warp_factors(**inputs).float(), searched.warp_factors)
    unwarped.save_pretrained(tmp_path)
    loaded = UnitEncoderModel.from_pretrained(tmp_path)
    assert loaded.config.vtln_tokenization == "unwarped"
    assert torch.equal(loaded(**inputs).units, out.units)


# ---------------------------------------------------------------------------------------------------- fitting
def test_fit_clusters_unwarped_features_first_then_warped_ones(speech):
    fe = SpeechFeatureExtractor()
    plain = UnitEncoderModel(UnitEncoderConfig(num_units=24, utterance_normalization=True)).eval()
    fit_unit_tokenizer_on_dataset(plain, speech, fe, max_frames=None, show_progress=False)
    zero = UnitEncoderModel(vtln_config()).eval()
    fit_unit_tokenizer_on_dataset(zero, speech, fe, max_frames=None, vtln_iterations=0, show_progress=False)
    assert torch.equal(zero.cluster_centers, plain.cluster_centers)  # iteration 0 is the unwarped fit

    two = UnitEncoderModel(vtln_config()).eval()
    fit_unit_tokenizer_on_dataset(two, speech, fe, max_frames=None, show_progress=False)  # 2 iterations by default
    assert not torch.equal(two.cluster_centers, plain.cluster_centers)
    # the refit centroids fit the warped features better than the unwarped fit fits the unwarped ones
    warped = collect_features(two, speech, fe, max_frames=None, show_progress=False)
    unwarped = collect_features(plain, speech, fe, max_frames=None, show_progress=False)

    def inertia(model, features):
        flat = (features - model.feature_mean) / model.feature_std
        return float(torch.cdist(flat, model.cluster_centers).min(-1).values.pow(2).mean())

    assert inertia(two, warped) < inertia(plain, unwarped)


def test_speaker_warps_are_shared_per_speaker_and_higher_voices_get_lower_ones(speech, fitted):
    warps = dataset_warp_factors(fitted, speech, SpeechFeatureExtractor(), speaker_column="voice", show_progress=False)
    by_voice = {}
    for voice, warp in zip(speech["voice"], warps):
        by_voice.setdefault(voice, set()).add(warp)
    assert all(len(values) == 1 for values in by_voice.values()), by_voice
    assert max(by_voice[v].pop() for v in HIGH) < min(by_voice[v].pop() for v in LOW)

    model = UnitEncoderModel(vtln_config()).eval()
    fit_unit_tokenizer_on_dataset(model, speech, SpeechFeatureExtractor(), max_frames=None, speaker_column="voice",
                                  vtln_iterations=1, show_progress=False)  # fmt: skip
    assert bool(model.is_fitted)
    with pytest.raises(ValueError, match="needs UnitEncoderConfig\\(vtln_warps=...\\)"):
        fit_unit_tokenizer_on_dataset(UnitEncoderModel(UnitEncoderConfig(num_units=4)), speech,
                                      SpeechFeatureExtractor(), vtln_iterations=1)  # fmt: skip
    with pytest.raises(ValueError, match="no column 'speaker'"):
        dataset_warp_factors(fitted, speech, SpeechFeatureExtractor(), speaker_column="speaker")


# ---------------------------------------------------------------------------------------------------- ABX and CLI
def test_abx_with_speaker_adaptation_tokenises_each_voice_at_one_warp(fitted):
    items = build_abx_items(words=("bat", "bet", "but"), voices=("en-us", "en-us+f2"), rates=(150, 200))
    pipe = SimpleNamespace(feature_extractor=SpeechFeatureExtractor(), speech_tokenizer=fitted)
    for adapt in (False, True):
        result = evaluate_abx(pipe, items, "units", speaker_adaptation=adapt)
        assert result["speaker_adaptation"] is adapt
        assert 0.0 <= result["between_speaker_error"] <= 1.0 and 0.0 <= result["within_speaker_error"] <= 1.0
    plain = UnitEncoderModel(UnitEncoderConfig(num_units=24)).eval()
    plain.load_state_dict(fitted.state_dict())
    with pytest.raises(ValueError, match="needs vtln_warps"):
        evaluate_abx(SimpleNamespace(feature_extractor=SpeechFeatureExtractor(), speech_tokenizer=plain), items,
                     "units", speaker_adaptation=True)  # fmt: skip


def test_cli_fits_a_vtln_tokenizer_per_speaker_and_refuses_a_speaker_column_without_vtln(speech, tmp_path, capsys):
    speech.save_to_disk(str(tmp_path / "speech"))
    out = tmp_path / "tok"
    assert main(["fit-tokenizer", "--dataset", str(tmp_path / "speech"), "--num-units", "12", "--utterance-normalization",
                 "--vtln", "--vtln-iterations", "1", "--speaker-column", "voice", "--output", str(out)]) == 0  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["vtln_warps"] == list(DEFAULT_VTLN_WARPS) and config["utterance_normalization"] is True
    tokenizer = UnitEncoderModel.from_pretrained(out)
    inputs = spoken(["en-us+f3"])
    assert tokenizer(**inputs).warp_factors.shape == (2,)

    assert config["vtln_tokenization"] == "search"

    capsys.readouterr()
    assert main(["fit-tokenizer", "--dataset", str(tmp_path / "speech"), "--num-units", "12", "--vtln",
                 "--vtln-iterations", "1", "--vtln-tokenization", "unwarped", "--output", str(tmp_path / "tok2")]) == 0
    unwarped = UnitEncoderModel.from_pretrained(tmp_path / "tok2")
    assert unwarped.config.vtln_tokenization == "unwarped" and unwarped(**inputs).warp_factors is None
    assert main(["fit-tokenizer", "--dataset", str(tmp_path / "speech"), "--vtln-tokenization", "unwarped",
                 "--output", str(tmp_path / "bad")]) == 1  # fmt: skip
    assert "--vtln-tokenization unwarped is for --vtln" in capsys.readouterr().err
    assert main(["fit-tokenizer", "--dataset", str(tmp_path / "speech"), "--speaker-column", "voice",
                 "--output", str(tmp_path / "bad")]) == 1  # fmt: skip
    assert "--speaker-column is for --vtln" in capsys.readouterr().err
    assert main(["fit-tokenizer", "--dataset", str(tmp_path / "speech"), "--vtln", "--speaker-column", "speaker",
                 "--output", str(tmp_path / "bad")]) == 1  # fmt: skip
    assert "has no column 'speaker'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert isinstance(datasets.load_from_disk(str(tmp_path / "speech")), datasets.Dataset)  # the input is untouched


def test_evaluate_abx_speaker_adaptation_is_refused_for_a_pipeline_without_vtln(tmp_path, capsys):
    assert main(["evaluate", "abx", "--pipeline", "default", "--speaker-adaptation", "--words", "bat,bet",
                 "--output", str(tmp_path / "abx.json")]) == 1  # fmt: skip
    assert "the speech tokenizer of default has no vtln_warps" in capsys.readouterr().err
    assert not (tmp_path / "abx.json").exists()
