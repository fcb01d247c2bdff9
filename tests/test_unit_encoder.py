"""UnitEncoderModel: config, padding-invariant front ends, k-means, dedup, saved state, datasets.map, espeak speech.
The common checks (save/load, Auto classes, remote code, padded batch, dtype, device, export) run through
`ComponentTesterMixin` for the MFCC and the SSL front end."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoConfig, AutoModel, HubertConfig, HubertModel, Wav2Vec2Config, WavLMConfig

import hf_slm  # noqa: F401  (registers the Auto classes)
from hf_slm.models.unit_encoder import (
    SpeechFeatureExtractor,
    TokenizationPlan,
    UnitEncoderConfig,
    UnitEncoderModel,
    UnitEncoderOutput,
    default_plan,
    length_buckets,
)
from hf_slm.training.kmeans import MiniBatchKMeans, fit_unit_tokenizer, fit_unit_tokenizer_on_dataset
from component_tester import ComponentTesterMixin

ENCODERS = {"hubert": HubertConfig, "wav2vec2": Wav2Vec2Config, "wavlm": WavLMConfig}


class UnitEncoderModelTester:
    """Tiny configs: hidden 32, 2 layers, 2 heads, 16 conv channels but the standard conv kernels/strides (hop 320)."""

    def __init__(self, num_units=16, seed=0):
        self.num_units = num_units
        self.seed = seed

    def get_ssl_config(self, encoder="hubert", norm="group"):
        return ENCODERS[encoder](
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            conv_dim=(16,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            feat_extract_norm=norm,
            do_stable_layer_norm=norm == "layer",
            num_buckets=32,  # WavLM relative positions (ignored by the others)
        )

    def get_config(self, frontend="mfcc", encoder="hubert", norm="group", ssl_layer=1):
        if frontend == "mfcc":
            return UnitEncoderConfig(num_units=self.num_units)
        return UnitEncoderConfig(
            frontend="ssl", ssl_config=self.get_ssl_config(encoder, norm), ssl_layer=ssl_layer, num_units=self.num_units
        )

    def fitted_model(self, config):
        torch.manual_seed(self.seed)
        model = UnitEncoderModel(config).eval()
        features = torch.randn(40 * self.num_units, config.feature_dim)
        fit_unit_tokenizer(model, features, batch_size=256, max_steps=10, show_progress=False)
        return model

    @staticmethod
    def waves(lengths=(16000, 9000, 12345, 400)):
        gen = torch.Generator().manual_seed(1)
        return [torch.randn(n, generator=gen) for n in lengths]

    def create_and_check_padding_invariance(self, model, atol):
        fe = SpeechFeatureExtractor()
        waves = self.waves()
        with torch.no_grad():
            batch = model(**fe(waves, sampling_rate=16000), output_features=True)
            for i, wave in enumerate(waves):
                alone = model(**fe(wave, sampling_rate=16000), output_features=True)
                n = alone.units.shape[1]
                assert int(batch.units_mask[i].sum()) == n
                assert torch.equal(batch.units[i, :n], alone.units[0])
                assert torch.all(batch.units[i, n:] == model.config.pad_unit_id)
                torch.testing.assert_close(batch.features[i, :n], alone.features[0], atol=atol, rtol=0)


@pytest.fixture(scope="module")
def tester():
    return UnitEncoderModelTester()


# ---------------------------------------------------------------------------------------------------- common checks
class UnitEncoderComponentTester(ComponentTesterMixin):
    model_class = UnitEncoderModel
    compared_outputs = ("units", "units_mask", "features")

    def get_inputs(self):
        return {**super().get_inputs(), "output_features": True}

    def get_batch_and_items(self):
        fe, waves = SpeechFeatureExtractor(), UnitEncoderModelTester.waves()
        batch = {**fe(waves, sampling_rate=16000), "output_features": True}
        return batch, [{**fe(wave, sampling_rate=16000), "output_features": True} for wave in waves]


class TestMfccUnitEncoder(UnitEncoderComponentTester):
    component = "unit_encoder_mfcc"
    batch_atol = 0.0  # masked MFCC statistics: a padded batch is bit-exact
    fullgraph_blocked = (
        "torchaudio.functional.spectrogram calls torch.jit helpers (`_get_spec_norms`), which Dynamo skips: a graph "
        "break (non-strict torch.export runs them in Python and passes)"
    )
    processor_auto_class = "AutoFeatureExtractor"  # saved next to the model, as `hf-slm fit-tokenizer` does

    def get_processor(self):
        return SpeechFeatureExtractor(sampling_rate=16000, max_duration_s=30.0)

    def processor_inputs(self):  # 22.05 kHz in: the remote feature extractor resamples and pads as ours does
        raw = [np.ones(22050, dtype=np.float32) * 0.1, np.linspace(-1, 1, 11025, dtype=np.float32)]
        return {"raw_speech": raw, "sampling_rate": 22050}


class TestVtlnUnitEncoder(TestMfccUnitEncoder):
    """MFCC + CMVN with a warp search per utterance: each row's warp and units are its own alone (CMVN's float32
    statistics round differently in a padded row, hence the tolerance on features)."""

    component = "unit_encoder_vtln"
    batch_atol = 1e-4
    compared_outputs = ("units", "units_mask", "features", "warp_factors")


class TestSslUnitEncoder(UnitEncoderComponentTester):
    component = "unit_encoder_ssl"
    batch_atol = 1e-4
    export_blocked = fullgraph_blocked = (
        "SSL front end: `_ssl_features` chooses the masked or the unmasked encoder call from the data "
        "(`bool((lengths < samples).any())`) and captures the layer with a forward hook registered inside forward"
    )


# ---------------------------------------------------------------------------------------------------- config
def test_config_defaults_reproduce_hubert_iteration_0():
    config = UnitEncoderConfig()
    assert (config.feature_dim, config.frame_rate, config.hop_length, config.receptive_field) == (39, 50.0, 320, 400)
    assert config.ssl_config is None


def test_ssl_config_derived_values_and_round_trip(tmp_path, tester):
    config = tester.get_config("ssl", "wavlm", "layer", ssl_layer=2)
    assert (config.feature_dim, config.hop_length, config.frame_rate, config.receptive_field) == (32, 320, 50.0, 400)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is UnitEncoderConfig and type(loaded.ssl_config) is WavLMConfig
    assert loaded.ssl_config.hidden_size == 32 and loaded.ssl_layer == 2
    from_dict = UnitEncoderConfig(frontend="ssl", ssl_config=config.ssl_config.to_dict(), ssl_layer=1)
    assert type(from_dict.ssl_config) is WavLMConfig


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"frontend": "fbank"}, "frontend"),
        ({"num_units": 0}, "num_units"),
        ({"hop_length": -1}, "hop_length"),
        ({"n_fft": 256}, "n_fft"),
        ({"n_mfcc": 50}, "n_mfcc=50"),
        ({"pad_unit_id": 0}, "pad_unit_id"),
        ({"utterance_normalization": 1}, "utterance_normalization"),
        ({"frontend": "ssl", "ssl_layer": 13}, "ssl_layer=13"),
        ({"frontend": "ssl", "ssl_config": {"model_type": "bert"}}, "wav2vec2-style"),
    ],
)
def test_config_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        UnitEncoderConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------- front ends
@pytest.mark.parametrize("encoder,norm", [("hubert", "layer"), ("wav2vec2", "group"), ("wavlm", "layer")])
def test_ssl_padding_invariance(tester, encoder, norm):
    """Each SSL encoder and norm (MFCC and HuBERT with group norm: `TestMfccUnitTokenizer` / `TestSslUnitTokenizer`)."""
    model = tester.fitted_model(tester.get_config("ssl", encoder, norm))
    tester.create_and_check_padding_invariance(model, atol=1e-4)


def test_utterance_normalization_removes_an_utterance_offset_survives_padding_and_saving(tmp_path, tester):
    """CMVN per utterance: zero mean / unit variance over each utterance's own frames, so a gain change (a constant
    offset of the cepstrum's c0) no longer changes the features, as it does without it; padded batches equal single
    utterances; the flag is saved with the tokenizer."""
    fe = SpeechFeatureExtractor(do_normalize=False)
    wave = tester.waves()[0] * 0.05
    models = {norm: tester.fitted_model(UnitEncoderConfig(num_units=tester.num_units, utterance_normalization=norm))
              for norm in (False, True)}  # fmt: skip
    with torch.no_grad():
        quiet, loud = (models[True].extract_features(fe(w, sampling_rate=16000)["input_values"])[0][0]
                       for w in (wave, wave * 3))  # fmt: skip
        torch.testing.assert_close(quiet, loud, atol=1e-3, rtol=0)
        torch.testing.assert_close(quiet.mean(0), torch.zeros(39), atol=1e-4, rtol=0)
        torch.testing.assert_close(quiet.std(0, unbiased=False), torch.ones(39), atol=1e-3, rtol=0)
        raw_quiet, raw_loud = (models[False].extract_features(fe(w, sampling_rate=16000)["input_values"])[0][0]
                               for w in (wave, wave * 3))  # fmt: skip
        assert float((raw_loud[:, 0] - raw_quiet[:, 0]).mean()) > 1.0  # c0 moved by the gain
    tester.create_and_check_padding_invariance(models[True], atol=1e-4)
    models[True].save_pretrained(tmp_path)
    loaded = UnitEncoderModel.from_pretrained(tmp_path)
    assert loaded.config.utterance_normalization is True
    inputs = SpeechFeatureExtractor()(tester.waves(), sampling_rate=16000)
    assert torch.equal(loaded(**inputs).units, models[True](**inputs).units)


def test_group_norm_masking_is_what_makes_padding_invariant(tester):
    """Without the masked GroupNorm, zero padding changes the first conv layer's statistics (the test can fail)."""
    model = tester.fitted_model(tester.get_config("ssl", "hubert", "group"))
    fe = SpeechFeatureExtractor()
    inputs = fe(tester.waves((16000, 6000)), sampling_rate=16000)
    with torch.no_grad():
        alone = model.extract_features(**fe(tester.waves((16000, 6000))[1], sampling_rate=16000))[0][0]
        masked = model.extract_features(**inputs)[0][1, : alone.shape[0]]
        plain = model.ssl_encoder(inputs["input_values"], attention_mask=inputs["attention_mask"]).last_hidden_state
    assert (masked - alone).abs().max() < 1e-4
    assert (plain[1, : alone.shape[0]] - alone).abs().max() > 1e-2


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("ssl_layer", [0, 1, 2])
def test_ssl_features_are_the_full_encoders_hidden_state(tester, norm, ssl_layer):
    """Only the needed layers are built, yet the features equal the full model's hidden_states[ssl_layer]."""
    model = tester.fitted_model(tester.get_config("ssl", "hubert", norm, ssl_layer=ssl_layer))
    assert len(model.ssl_encoder.encoder.layers) == max(ssl_layer, 1)
    full = HubertModel(model.config.ssl_config).eval()
    missing = full.load_state_dict(model.ssl_encoder.state_dict(), strict=False).missing_keys
    assert all(".layers." in key for key in missing)
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        expected = full(wave, output_hidden_states=True).hidden_states[ssl_layer]
        features, mask = model.extract_features(wave)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)
    assert mask.all() and mask.shape[1] == int(full._get_feat_extract_output_lengths(8000))


def test_mfcc_frames_match_hubert_frames(tester):
    mfcc = tester.fitted_model(tester.get_config("mfcc"))
    ssl = tester.fitted_model(tester.get_config("ssl"))
    for n in (400, 719, 720, 16000, 16321):
        assert mfcc.extract_features(torch.randn(1, n))[0].shape[1] == ssl.extract_features(torch.randn(1, n))[0].shape[1]


# ---------------------------------------------------------------------------------------------------- k-means
def _blobs(num=5, dim=8, per=300, spread=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(num, dim, generator=gen) * 10
    points = torch.cat([c + spread * torch.randn(per, dim, generator=gen) for c in centers])
    labels = torch.arange(num).repeat_interleave(per)
    return points, labels, centers


def test_kmeans_recovers_well_separated_clusters():
    points, labels, centers = _blobs()
    km = MiniBatchKMeans(5, batch_size=128, max_steps=40, seed=0, show_progress=False).fit(points)
    distance = torch.cdist(centers, km.cluster_centers)
    assert distance.min(1).values.max() < 0.05  # every true centre has a centroid on it
    predicted = km.predict(points)
    for cluster in range(5):  # each true cluster maps to exactly one predicted id, and vice versa
        assert predicted[labels == cluster].unique().numel() == 1
    assert predicted.unique().numel() == 5


def test_kmeans_is_seeded_and_accepts_a_stream():
    points, _, _ = _blobs(seed=3)
    runs = [MiniBatchKMeans(5, batch_size=100, max_steps=15, seed=7, show_progress=False).fit(points) for _ in range(2)]
    assert torch.equal(runs[0].cluster_centers, runs[1].cluster_centers)
    stream = MiniBatchKMeans(5, batch_size=100, max_steps=30, seed=7, show_progress=False).fit(list(points.split(250)))
    assert stream.cluster_centers.shape == (5, 8)


def test_kmeans_reseeds_dead_centroids():
    points, labels, centers = _blobs(num=3)
    init = torch.cat([centers[:2], torch.full((1, 8), 1e4)])  # third centroid far from everything: never assigned
    never = MiniBatchKMeans(3, batch_size=90, max_steps=30, reassign_after=10**6, seed=0, show_progress=False)
    assert never.fit(points, init_centers=init).predict(points).unique().numel() == 2  # without re-seeding: dead
    km = MiniBatchKMeans(3, batch_size=90, max_steps=30, reassign_after=3, seed=0, show_progress=False)
    predicted = km.fit(points, init_centers=init).predict(points)
    assert km.cluster_centers.abs().max() < 100
    assert sorted(predicted[labels == c].unique().tolist() for c in range(3)) == [[0], [1], [2]]


def test_tokenizer_fit_standardises_and_recovers_clusters(tester):
    points, labels, _ = _blobs(dim=39, spread=0.5)
    model = UnitEncoderModel(UnitEncoderConfig(num_units=5))
    kmeans = fit_unit_tokenizer(model, points * 100 + 7, batch_size=256, max_steps=30, show_progress=False)
    assert kmeans.inertia_ is not None and bool(model.is_fitted)
    torch.testing.assert_close(model.feature_mean, (points * 100 + 7).mean(0))
    units = model.quantize(points * 100 + 7)
    assert all(units[labels == c].unique().numel() == 1 for c in range(5)) and units.unique().numel() == 5


def test_unfitted_tokenizer_raises(tester):
    model = UnitEncoderModel(tester.get_config("mfcc"))
    with pytest.raises(RuntimeError, match="not fitted"):
        model(torch.randn(1, 16000))
    model.extract_features(torch.randn(1, 16000))  # features do not need the centroids


@pytest.mark.parametrize(
    "kwargs,error,fragment",
    [
        ({"input_values": torch.randn(2, 300)}, ValueError, "300 samples is shorter than one analysis window of 400"),
        ({"input_values": torch.randn(1, 1, 800)}, ValueError, "input_values must be"),
        ({"input_values": torch.randn(2, 800), "attention_mask": torch.tensor([[0] * 100 + [1] * 700] * 2)}, ValueError, "right-padded"),
        ({"input_values": torch.randn(2, 800), "attention_mask": torch.ones(2, 700)}, ValueError, "attention_mask shape"),
    ],
)
def test_bad_model_inputs_raise(tester, kwargs, error, fragment):
    model = tester.fitted_model(tester.get_config("mfcc"))
    with pytest.raises(error, match=fragment):
        model(**kwargs)


@pytest.mark.parametrize(
    "units,mask,expected",
    [
        ([[1, 1, 2, 2, 2, 1, -1]], [[1, 1, 1, 1, 1, 1, 0]], [([1, 2, 1], [2, 3, 1])]),
        ([[5, 5, 5], [3, 4, 4]], None, [([5], [3]), ([3, 4], [1, 2])]),
        ([[7, -1, -1]], [[1, 0, 0]], [([7], [1])]),
    ],
)
def test_deduplicate(units, mask, expected):
    mask = None if mask is None else torch.tensor(mask, dtype=torch.bool)
    result = UnitEncoderModel.deduplicate(torch.tensor(units), mask)
    assert [(u.tolist(), d.tolist()) for u, d in result] == expected


# ---------------------------------------------------------------------------------------------------- saved state
@pytest.mark.parametrize("frontend", ["mfcc", "ssl"])
def test_saved_weights_are_the_fitted_state_not_the_mfcc_filters(tmp_path, tester, frontend):
    from safetensors import safe_open
    from transformers import AutoFeatureExtractor

    model = tester.fitted_model(tester.get_config(frontend))
    model.save_pretrained(tmp_path)
    SpeechFeatureExtractor().save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.pkl"))
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert {"cluster_centers", "feature_mean", "feature_std", "is_fitted"} <= keys
    assert not any(key.startswith("mfcc.") for key in keys)  # recomputed from the config, not stored
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is SpeechFeatureExtractor
    assert bool(AutoModel.from_pretrained(tmp_path).is_fitted)


def test_from_ssl_pretrained_loads_real_encoder_weights(tmp_path, tester):
    torch.manual_seed(0)
    encoder = HubertModel(tester.get_ssl_config("hubert", "group")).eval()
    encoder.save_pretrained(tmp_path)
    model = UnitEncoderModel.from_ssl_pretrained(str(tmp_path), layer=1, num_units=8)
    assert model.config.ssl_layer == 1 and model.config.num_units == 8 and len(model.ssl_encoder.encoder.layers) == 1
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(
            model.extract_features(wave)[0], encoder(wave, output_hidden_states=True).hidden_states[1], atol=1e-5, rtol=0
        )


def test_log_mel_encoder_front_end_wav2vec2_bert(tmp_path):
    """A log-mel encoder (wav2vec2-bert, a CTC checkpoint as `examples/speech_llm` trains) as the SSL front end: the
    model runs the checkpoint's own feature extractor on each waveform, so its features are the encoder's
    `hidden_states[layer]` on that extractor's output; batched units equal each utterance's alone, and it saves and
    loads. A wrong or missing extractor is refused by name."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertForCTC

    config = Wav2Vec2BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                feature_projection_input_dim=160, conv_depthwise_kernel_size=5, vocab_size=6)  # fmt: skip
    torch.manual_seed(0)
    ctc = Wav2Vec2BertForCTC(config).eval()
    ctc.save_pretrained(tmp_path / "ctc")
    extractor = SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, stride=2)
    extractor.save_pretrained(tmp_path / "ctc")
    model = UnitEncoderModel.from_ssl_pretrained(str(tmp_path / "ctc"), layer=1, num_units=6).eval()
    assert (model.config.hop_length, model.config.receptive_field, model.config.frame_rate) == (320, 560, 50.0)
    waves = [torch.randn(16000) * 0.1, torch.randn(7000) * 0.1]
    inputs = SpeechFeatureExtractor()(waves, sampling_rate=16000)
    with torch.no_grad():
        features, mask = model.extract_features(**inputs)
        direct = extractor(inputs["input_values"][1, :7000].numpy(), sampling_rate=16000, return_tensors="pt")
        expected = ctc.wav2vec2_bert(**direct, output_hidden_states=True).hidden_states[1][0]
    assert mask.sum(-1).tolist() == [49, expected.shape[0]]
    torch.testing.assert_close(features[1, : expected.shape[0]], expected, atol=1e-5, rtol=1e-4)
    fit_unit_tokenizer(model, features[mask], show_progress=False)
    batch = model(**inputs)
    for i, wave in enumerate(waves):
        alone = model(**SpeechFeatureExtractor()([wave], sampling_rate=16000)).units[0]
        assert torch.equal(batch.units[i, : alone.shape[0]], alone)
    model.save_pretrained(tmp_path / "units")
    assert torch.equal(UnitEncoderModel.from_pretrained(tmp_path / "units")(**inputs).units, batch.units)
    with pytest.raises(ValueError, match="reads log-mel features"):
        UnitEncoderConfig(frontend="ssl", ssl_config=config, ssl_layer=1)
    with pytest.raises(ValueError, match="log-mel encoders"):
        UnitEncoderConfig(frontend="ssl", ssl_config=HubertConfig(), ssl_feature_extractor=extractor.to_dict())


# ---------------------------------------------------------------------------------------------------- datasets
@pytest.fixture(scope="module")
def audio_dataset(tmp_path_factory):
    import datasets

    folder = tmp_path_factory.mktemp("ds")
    gen = np.random.default_rng(0)
    paths = []
    for i, (seconds, rate) in enumerate([(0.5, 16000), (0.3, 22050), (0.8, 16000), (0.2, 8000)]):
        path = folder / f"utt{i}.wav"
        t = np.arange(int(seconds * rate)) / rate
        sf.write(path, (np.sin(2 * np.pi * (150 + 80 * i) * t) + 0.1 * gen.standard_normal(t.size)) * 0.3, rate)
        paths.append(str(path))
    return datasets.Dataset.from_dict({"audio": paths, "id": list(range(4))}).cast_column("audio", datasets.Audio())


def test_fit_on_dataset_and_datasets_map(audio_dataset, tester):
    fe = SpeechFeatureExtractor()
    model = UnitEncoderModel(UnitEncoderConfig(num_units=6)).eval()
    fit_unit_tokenizer_on_dataset(model, audio_dataset, fe, batch_size=3, max_frames=1000, max_steps=10,
                                  show_progress=False)  # fmt: skip
    assert bool(model.is_fitted)

    def tokenize_function(batch):
        inputs = fe(batch["audio"])
        with torch.inference_mode():
            out = model(**inputs)
        return {"units": [u[m].tolist() for u, m in zip(out.units, out.units_mask)]}

    mapped = audio_dataset.map(tokenize_function, batched=True, batch_size=3, remove_columns=["audio"])
    for row, example in zip(mapped, audio_dataset):
        with torch.inference_mode():
            alone = model(**fe(example["audio"])).units[0].tolist()
        assert row["units"] == alone and len(alone) > 0


def test_output_is_a_model_output(tester):
    model = tester.fitted_model(tester.get_config("mfcc"))
    out = model(torch.randn(2, 4000), output_features=True)
    assert isinstance(out, UnitEncoderOutput)
    assert out.units.dtype == torch.long and out.units_mask.dtype == torch.bool and out.features.shape == (2, 12, 39)
    units, mask, _ = model(torch.randn(2, 4000), output_features=True, return_dict=False)
    assert units.shape == mask.shape == (2, 12)


# ---------------------------------------------------------------------------------------------------- real speech
def _espeak(text: str, path, voice: str = "en") -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_speech_gives_stable_and_distinct_unit_strings(tmp_path):
    fe = SpeechFeatureExtractor()
    train = [_espeak(t, tmp_path / f"train{i}.wav") for i, t in enumerate(
        ["the quick brown fox jumps over the lazy dog", "she sells sea shells by the sea shore", "one two three four five"]
    )]
    model = UnitEncoderModel(UnitEncoderConfig(num_units=20)).eval()
    inputs = fe([str(p) for p in train])
    features, mask = model.extract_features(**inputs)
    fit_unit_tokenizer(model, features[mask], batch_size=512, max_steps=30, show_progress=False)

    def unit_string(text, name):
        units, durations = model.deduplicate(*model(**fe(str(_espeak(text, tmp_path / name)))).to_tuple()[:2])[0]
        return units.tolist()

    first, second = unit_string("good morning", "a.wav"), unit_string("good morning", "b.wav")
    other = unit_string("purple elephant", "c.wav")
    assert first == second and len(first) > 5
    assert first != other


def test_compute_deltas_matches_torchaudio_and_ignores_padding():
    import torchaudio

    from hf_slm.models.unit_encoder.modeling_unit_encoder import compute_deltas

    x = torch.randn(2, 13, 30, dtype=torch.float64)
    torch.testing.assert_close(compute_deltas(x, torch.tensor([30, 30])), torchaudio.functional.compute_deltas(x))
    padded = torch.cat([x[:1, :, :20], torch.randn(1, 13, 10, dtype=torch.float64) * 100], dim=-1)
    torch.testing.assert_close(
        compute_deltas(padded, torch.tensor([20]))[..., :20], torchaudio.functional.compute_deltas(x[:1, :, :20])
    )


# ---------------------------------------------------------------------------------------------------- tokenize()
def test_length_buckets_bound_padding_and_cover_every_utterance():
    lengths = [16000, 9000, 12345, 400, 15000, 9100, 8990, 16000]
    buckets = length_buckets(lengths, batch_size=3, max_padding=0.1)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for bucket in buckets:
        longest = lengths[bucket[0]]
        assert len(bucket) <= 3 and all(lengths[i] <= longest for i in bucket)
        padded = sum(longest - lengths[i] for i in bucket)
        assert padded <= 0.1 * longest * len(bucket)
    assert length_buckets(lengths, batch_size=1) == [[i] for i in (0, 7, 4, 2, 5, 1, 6, 3)]  # stable, longest first


@pytest.mark.parametrize("frontend,norm", [("mfcc", None), ("ssl", "group"), ("ssl", "layer")])
@pytest.mark.parametrize(
    "plan",
    [None, TokenizationPlan(batch_size=4, max_padding=0.5, num_workers=2, threads_per_worker=1),
     TokenizationPlan(batch_size=1, num_workers=1)],
    ids=["default", "padded_workers", "per_utterance"],
)  # fmt: skip
def test_tokenize_gives_each_utterances_own_units_in_input_order(tester, frontend, norm, plan):
    """Bit-identical units to a per-utterance loop, for varied lengths, whatever the batching and the workers."""
    config = tester.get_config(frontend) if frontend == "mfcc" else tester.get_config("ssl", "hubert", norm, ssl_layer=2)
    model = tester.fitted_model(config)
    fe = SpeechFeatureExtractor()
    waves = tester.waves((16000, 9000, 12345, 400, 15000, 9100, 8990, 11000, 640))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the loop with the workers' thread count: the features are then equal too
    try:
        with torch.inference_mode():
            expected = [model(**fe(w, sampling_rate=16000)).units[0] for w in waves]
    finally:
        torch.set_num_threads(threads)
    got = model.tokenize(**fe(waves, sampling_rate=16000), plan=plan)
    assert [u.tolist() for u in got] == [u.tolist() for u in expected]
    assert torch.get_num_threads() == threads  # the workers' setting is undone


def test_default_plan_follows_device_and_front_end(tester):
    mfcc = tester.get_config("mfcc")
    base = UnitEncoderConfig(frontend="ssl", ssl_config=HubertConfig(), ssl_layer=6)
    assert default_plan(mfcc, "cpu").batch_size == 16
    assert default_plan(base, "cpu").batch_size == 1  # on a CPU batching an SSL encoder buys nothing
    # a GPU takes fewer, padded batches: 6-10 s utterances go in one batch, not one per 10 % of length
    assert default_plan(base, "cuda") == TokenizationPlan(batch_size=16, max_padding=0.5, num_workers=1)
    assert len(length_buckets([96_000 + 4_000 * i for i in range(16)], 16, default_plan(base, "cuda").max_padding)) == 1
    assert default_plan(base, "cpu", num_workers=1).threads_per_worker is None


@pytest.mark.parametrize("num_proc", [1, 2])
def test_tokenize_speech_gives_each_utterances_units_with_one_or_two_processes(audio_dataset, tester, num_proc, tmp_path):
    """The datasets.map path (`tokenize_speech`, as `hf-slm tokenize --dataset --num-proc N`) goes through
    `tokenize()`; forked processes give the same rows as tokenising each utterance alone."""
    from hf_slm.training.speech_units import tokenize_speech

    fe = SpeechFeatureExtractor()
    model = tester.fitted_model(tester.get_config("ssl", "hubert", "group", ssl_layer=2))
    mapped = tokenize_speech(audio_dataset, fe, model, batch_size=3, deduplicate=True, cache_dir=tmp_path,
                             num_proc=num_proc)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: equal features, not just equal units
    try:
        for row, example in zip(mapped, audio_dataset):
            with torch.inference_mode():
                units, durations = model.deduplicate(model(**fe(example["audio"])).units[0])[0]
            assert row["units"] == units.tolist() and row["durations"] == durations.tolist()
    finally:
        torch.set_num_threads(threads)
