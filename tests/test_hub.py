"""Hub push / pull through the loopback Hub server (tests/hub_server.py), driven by the real huggingface_hub client.

Every test gets a fresh server, cache and token from the ``hub_server`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    BadRequestError,
    EntryNotFoundError,
    HFValidationError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session, hf_raise_for_status
from transformers import (
    HubertConfig,
    HubertModel,
    LlamaConfig,
    LlamaForCausalLM,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
    Wav2Vec2FeatureExtractor,
)

from hf_slm.cli import main as cli_main
from hf_slm.hub import pull, push
from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.models.unit_vocoder import (
    UnitHifiGanVocoder,
    UnitHifiGanVocoderConfig,
    UnitMelVocoder,
    UnitMelVocoderConfig,
)
from hf_slm.pipelines import INDEX_FILE, PipelineLoadError, SpeechLMPipeline

USER = "tester"  # the fixture's token belongs to this user (tests/conftest.py)
NUM_UNITS = 16


# ---------------------------------------------------------------------------------------------------- tiny components
def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64))


def tiny_vocoder(seed: int) -> SpeechT5HifiGan:
    torch.manual_seed(seed)
    return SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=8, upsample_initial_channel=16, upsample_rates=[2, 2],
                                                 upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3],
                                                 resblock_dilation_sizes=[[1]]))


def tiny_hubert(seed: int) -> HubertModel:
    torch.manual_seed(seed)
    return HubertModel(HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                    conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3),
                                    num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2))


def tiny_unit_encoder(seed: int) -> UnitEncoderModel:
    torch.manual_seed(seed)
    model = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=NUM_UNITS))
    with torch.no_grad():  # random "fitted" statistics so that a mix-up of weights cannot go unnoticed
        model.cluster_centers.normal_()
        model.feature_mean.normal_()
    return model


def tiny_speech_lm(seed: int, num_units: int = NUM_UNITS) -> SpeechLMForCausalLM:
    torch.manual_seed(seed)
    backbone = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           num_key_value_heads=1)
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=num_units))


def tiny_mel_vocoder(seed: int) -> UnitMelVocoder:
    torch.manual_seed(seed)
    return UnitMelVocoder(UnitMelVocoderConfig(num_units=NUM_UNITS, hidden_size=16, num_unit_layers=1,
                                               num_mel_layers=1, griffin_lim_iters=2))


def tiny_hifigan_vocoder(seed: int) -> UnitHifiGanVocoder:
    torch.manual_seed(seed)  # hop 320: the 50 Hz units of the tokenizer (a pipeline refuses a vocoder at another rate)
    return UnitHifiGanVocoder(UnitHifiGanVocoderConfig(
        num_units=NUM_UNITS, embedding_dim=8, upsample_rates=(10, 8, 4), upsample_kernel_sizes=(20, 16, 8),
        upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),)))


def components_transformers_parts(seed: int) -> dict:
    """Stand-ins from plain transformers: the index then names ``transformers`` classes, not ``hf_slm`` ones."""
    return {"feature_extractor": Wav2Vec2FeatureExtractor(), "speech_tokenizer": tiny_hubert(seed),
            "language_model": tiny_llama(seed), "vocoder": tiny_vocoder(seed)}


def components_gslm(vocoder):
    def build(seed: int) -> dict:
        return {"feature_extractor": SpeechFeatureExtractor(), "speech_tokenizer": tiny_unit_encoder(seed),
                "language_model": tiny_speech_lm(seed), "vocoder": vocoder(seed)}

    return build


#: Variants pushed and pulled bit-exactly; extend with each new kind of variant.
VARIANTS = {
    "transformers_parts": components_transformers_parts,
    "gslm_mel_vocoder": components_gslm(tiny_mel_vocoder),
    "gslm_hifigan_vocoder": components_gslm(tiny_hifigan_vocoder),
}
#: hf_slm components that must load from the Hub with trust_remote_code where hf_slm is not installed.
REMOTE_CODE_COMPONENTS = {
    "unit-tokenizer": (tiny_unit_encoder, "AutoModel"),
    "speech-lm": (tiny_speech_lm, "AutoModelForCausalLM"),
    "unit-mel-vocoder": (tiny_mel_vocoder, "AutoModel"),
    "unit-hifigan-vocoder": (tiny_hifigan_vocoder, "AutoModel"),
}


# ---------------------------------------------------------------------------------------------------- helpers
def file_hashes(folder) -> dict[str, str]:
    """sha256 of every file below ``folder``, by relative path (the Hub's own .gitattributes and caches left out)."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts and p.name != ".gitattributes"
    }


def assert_client_fully_served(server):
    """Nothing the client asked for fell outside what the server implements (bar the CLI's agent-registry lookup)."""
    assert not server.errors
    assert [r for r in server.unhandled if r != "GET /api/agent-harnesses"] == []


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def assert_same_pipeline(loaded, components: dict):
    for name, original in components.items():
        got = loaded.components[name]
        assert type(got).__name__ == type(original).__name__, name
        if hasattr(original, "state_dict"):
            assert_same_weights(got, original)
        else:
            assert got.to_dict() == original.to_dict(), name


def save_variant(components: dict, folder: Path, shared: dict | None = None) -> Path:
    pipe = SpeechLMPipeline(**components)
    if shared:
        pipe._shared_components = shared
    return pipe.save_pretrained(folder)


# ---------------------------------------------------------------------------------------------------- components
def test_component_round_trip_transformers(hub_server, tmp_path):
    model = tiny_llama(0)
    model.push_to_hub(f"{USER}/tiny-llama")  # transformers' own push_to_hub
    loaded = LlamaForCausalLM.from_pretrained(f"{USER}/tiny-llama")
    assert_same_weights(loaded, model)

    feature_extractor = Wav2Vec2FeatureExtractor(sampling_rate=8000, do_normalize=False)
    push(feature_extractor, f"{USER}/tiny-fe")  # hf_slm.hub.push of a component object
    assert Wav2Vec2FeatureExtractor.from_pretrained(f"{USER}/tiny-fe").to_dict() == feature_extractor.to_dict()

    files = hub_server.repo(f"{USER}/tiny-llama").commits[HfApi().model_info(f"{USER}/tiny-llama").sha].files
    assert files["model.safetensors"].lfs_oid is not None  # weights went the LFS way (batch, presigned PUT, verify)
    assert files["config.json"].lfs_oid is None  # small text files are regular git blobs
    assert any(method == "PUT" and path.startswith("/upload/") for method, path, _ in hub_server.requests)
    assert not any("xet" in path for _, path, _ in hub_server.requests)
    assert_client_fully_served(hub_server)


def weights_digest(model) -> str:
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()


def test_component_round_trip_remote_code(hub_server, tmp_path):
    models = {name: build(0) for name, (build, _) in REMOTE_CODE_COMPONENTS.items()}
    for name, model in models.items():
        push(model, f"{USER}/{name}")
    folder = tmp_path / "tokenizer"  # what `hf-slm fit-tokenizer` writes: model + feature extractor in one folder
    models["unit-tokenizer"].save_pretrained(folder)
    SpeechFeatureExtractor(sampling_rate=8000).save_pretrained(folder)
    push(folder, f"{USER}/unit-tokenizer", revision="with-fe")
    listed = {f.rfilename for f in HfApi().model_info(f"{USER}/unit-tokenizer", revision="with-fe").siblings}
    assert {"config.json", "model.safetensors", "modeling_unit_encoder.py", "preprocessor_config.json"} <= listed

    # a fresh process where hf_slm cannot be imported: only the code pushed next to the weights can load them
    script = "\n".join([
        "import sys, hashlib; sys.modules['hf_slm'] = None",
        "import transformers",
        "def digest(m):",
        "    return hashlib.sha256(b''.join(t.numpy().tobytes() for t in m.state_dict().values())).hexdigest()",
        *(f"m = transformers.{auto}.from_pretrained('{USER}/{name}', trust_remote_code=True); "
          f"print('{name}', type(m).__module__, digest(m))" for name, (_, auto) in REMOTE_CODE_COMPONENTS.items()),
        f"fe = transformers.AutoFeatureExtractor.from_pretrained('{USER}/unit-tokenizer', revision='with-fe', "
        "trust_remote_code=True); print('fe', type(fe).__module__, fe.sampling_rate)",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    for name, model in models.items():
        module, digest = printed[name]
        assert module.startswith("transformers_modules"), name
        assert digest == weights_digest(model), name
    assert printed["fe"][0].startswith("transformers_modules") and printed["fe"][1] == "8000"

    for name, (_, auto) in REMOTE_CODE_COMPONENTS.items():  # with hf_slm imported: the registered classes
        loaded = getattr(transformers, auto).from_pretrained(f"{USER}/{name}")
        assert type(loaded) is type(models[name])
        assert_same_weights(loaded, models[name])
    assert_client_fully_served(hub_server)


# ---------------------------------------------------------------------------------------------------- whole variants
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_push_pull_bit_exact(hub_server, tmp_path, variant):
    components = VARIANTS[variant](0)
    folder = save_variant(components, tmp_path / "variant")
    repo_id = f"{USER}/slm-{variant.replace('_', '-')}"
    commit = push(folder, repo_id)

    hub_server.tree_page_size = 3  # the tree listing then spans several pages, linked by `Link: rel="next"`
    pulled = pull(repo_id, local_dir=tmp_path / "pulled")
    assert file_hashes(pulled) == file_hashes(folder)
    assert any("/tree/" in path and "cursor=" in path for _, path, _ in hub_server.requests)
    assert any(name.endswith(".safetensors") for name in file_hashes(folder))
    cached = snapshot_download(repo_id, revision=commit.oid)
    assert file_hashes(cached) == file_hashes(folder)

    loaded = SpeechLMPipeline.from_pretrained(repo_id)
    assert_same_pipeline(loaded, components)
    assert_client_fully_served(hub_server)


def test_pipeline_push_to_hub_revision_pinning(hub_server, tmp_path):
    repo_id, api = f"{USER}/slm-pinning", HfApi()
    v1 = components_transformers_parts(1)
    SpeechLMPipeline(**v1).push_to_hub(repo_id)
    api.create_tag(repo_id, tag="v1")
    sha_v1 = api.model_info(repo_id).sha
    v2 = components_transformers_parts(2)
    del v2["vocoder"]  # v2 drops a component: its files must disappear from main
    SpeechLMPipeline(**v2).push_to_hub(repo_id)
    v3 = components_transformers_parts(3)
    SpeechLMPipeline(**v3).push_to_hub(repo_id, revision="dev")  # a new branch, created from main

    for revision, expected in (("v1", v1), (sha_v1, v1), (None, v2), ("main", v2), ("dev", v3)):
        loaded = SpeechLMPipeline.from_pretrained(repo_id, revision=revision)
        assert_same_pipeline(loaded, expected)
        assert ("vocoder" in loaded.components) == ("vocoder" in expected)
    assert not any(name.startswith("vocoder/") for name in file_hashes(pull(repo_id, revision="main")))
    assert_same_weights(LlamaForCausalLM.from_pretrained(repo_id, subfolder="language_model", revision="v1"),
                        v1["language_model"])
    refs = api.list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]


def test_shared_component_by_reference(hub_server, tmp_path):
    base_id, derived_id, api = f"{USER}/slm-base", f"{USER}/slm-derived", HfApi()
    base = components_transformers_parts(0)
    push(save_variant(base, tmp_path / "base"), base_id)
    base_sha = api.model_info(base_id).sha

    derived = {**components_transformers_parts(1), "vocoder": base["vocoder"]}
    pinned = {"library": "transformers", "class": "SpeechT5HifiGan", "repo": base_id, "subfolder": "vocoder",
              "revision": base_sha}
    floating = {**pinned, "revision": None}
    push(save_variant(derived, tmp_path / "pinned", {"vocoder": pinned}), derived_id, revision="pinned")
    push(save_variant(derived, tmp_path / "floating", {"vocoder": floating}), derived_id, revision="floating")
    pulled = pull(derived_id, revision="pinned", local_dir=tmp_path / "pulled")
    assert not (pulled / "vocoder").exists()
    assert json.loads((pulled / INDEX_FILE).read_text())["vocoder"]["repo"] == base_id

    new_vocoder = tiny_vocoder(7)  # the base repo moves on
    push(save_variant({**base, "vocoder": new_vocoder}, tmp_path / "base2"), base_id)
    pinned_pipe = SpeechLMPipeline.from_pretrained(derived_id, revision="pinned")
    assert_same_pipeline(pinned_pipe, derived)  # still the vocoder of the pinned base commit
    floating_pipe = SpeechLMPipeline.from_pretrained(derived_id, revision="floating")
    assert_same_weights(floating_pipe.vocoder, new_vocoder)  # follows the base repo's main branch
    assert pinned_pipe._shared_components["vocoder"]["repo"] == base_id


def test_reference_to_the_embedded_default(hub_server, tmp_path):
    """An index entry `"repo": "default"` means the default shipped in the installed package: pushed, pulled and
    loaded from the Hub, it resolves locally (nothing downloaded for it, whatever the working directory)."""
    repo_id = f"{USER}/slm-on-default"
    default = SpeechLMPipeline.from_pretrained("default")
    shared = {name: {"library": "hf_slm", "class": type(getattr(default, name)).__name__, "repo": "default",
                     "subfolder": name} for name in ("feature_extractor", "speech_tokenizer", "vocoder")}
    lm = tiny_speech_lm(0, num_units=default.speech_tokenizer.config.num_units)  # loading checks they agree
    own = {**{name: getattr(default, name) for name in shared}, "language_model": lm}
    push(save_variant(own, tmp_path / "variant", shared), repo_id)
    pulled = pull(repo_id, local_dir=tmp_path / "pulled")
    assert sorted(p.name for p in pulled.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["language_model"]
    assert_client_fully_served(hub_server)
    loaded = SpeechLMPipeline.from_pretrained(repo_id)
    assert_same_weights(loaded.language_model, lm)
    assert_same_weights(loaded.vocoder, default.vocoder)
    assert_same_weights(loaded.speech_tokenizer, default.speech_tokenizer)


WHOLE_VARIANT_WITHOUT_HF_SLM = """
import json, sys
sys.modules["hf_slm"] = None  # any import of hf_slm fails: only the code pushed with the variant can run
import numpy as np, torch, transformers
repo = sys.argv[1]
load = dict(trust_remote_code=True)
fe = transformers.AutoFeatureExtractor.from_pretrained(repo, subfolder="feature_extractor", **load)
tokenizer = transformers.AutoModel.from_pretrained(repo, subfolder="speech_tokenizer", **load).eval()
lm = transformers.AutoModelForCausalLM.from_pretrained(repo, subfolder="language_model", **load).eval()
vocoder = transformers.AutoModel.from_pretrained(repo, subfolder="vocoder", **load).eval()
audio = np.load(sys.argv[2])
with torch.no_grad():
    units = tokenizer(**fe(audio, sampling_rate=16000, return_tensors="pt")).units[0]
    input_ids, attention_mask = lm.units_to_input_ids([units])
    logits = lm(input_ids=input_ids, attention_mask=attention_mask).logits
    waveform = vocoder(input_ids=units[None]).waveform
torch.save({"units": units, "logits": logits, "waveform": waveform}, sys.argv[3])
print(json.dumps([type(m).__module__ for m in (fe, tokenizer, lm, vocoder)]))
"""


def test_embedded_default_pushed_by_name_runs_whole_without_hf_slm(hub_server, tmp_path):
    """`hf-slm push default` uploads the variant with its model code (written at push time: none is committed) at
    its root and in each component; a process that cannot import hf_slm then runs feature extractor -> tokenizer
    -> LM -> vocoder from the Hub by subfolder and computes what hf_slm computes."""
    assert cli_main(["push", "default", f"{USER}/default-copy"]) == 0
    files = {f.rfilename for f in HfApi().model_info(f"{USER}/default-copy").siblings}
    assert {"modeling_speech_lm.py", "language_model/modeling_speech_lm.py", "vocoder/modeling_unit_mel_vocoder.py",
            "feature_extractor/feature_extraction_unit_encoder.py"} <= files  # fmt: skip
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    np.save(tmp_path / "audio.npy", audio)
    proc = subprocess.run([sys.executable, "-c", WHOLE_VARIANT_WITHOUT_HF_SLM, f"{USER}/default-copy",
                           str(tmp_path / "audio.npy"), str(tmp_path / "out.pt")],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(m.startswith("transformers_modules") for m in json.loads(proc.stdout.splitlines()[-1]))
    remote = torch.load(tmp_path / "out.pt")
    pipe = SpeechLMPipeline.from_pretrained("default")
    units = pipe.encode({"array": audio, "sampling_rate": 16000})[0]
    assert torch.equal(remote["units"], units)
    with torch.no_grad():
        input_ids, attention_mask = pipe.language_model.units_to_input_ids([units])
        logits = pipe.language_model(input_ids=input_ids, attention_mask=attention_mask).logits
        waveform = pipe.vocoder(input_ids=units[None]).waveform
    torch.testing.assert_close(remote["logits"], logits)
    torch.testing.assert_close(remote["waveform"], waveform, atol=1e-3, rtol=1e-3)  # Griffin-Lim: thread rounding


# ---------------------------------------------------------------------------------------------------- visibility
def test_private_is_recorded(hub_server, tmp_path):
    folder = save_variant(components_transformers_parts(0), tmp_path / "variant")
    push(folder, f"{USER}/secret", private=True)
    push(folder, f"{USER}/open")
    api = HfApi()
    assert api.model_info(f"{USER}/secret").private is True
    assert api.model_info(f"{USER}/open").private is False
    with pytest.raises(RepositoryNotFoundError):  # anonymous callers cannot tell a private repo from a missing one
        api.model_info(f"{USER}/secret", token=False)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download(f"{USER}/secret", token=False)
    assert file_hashes(snapshot_download(f"{USER}/open", token=False)) == file_hashes(folder)


# ---------------------------------------------------------------------------------------------------- rejections
def test_rejections_surface_as_client_exceptions(hub_server, tmp_path):
    folder = save_variant(components_transformers_parts(0), tmp_path / "variant")
    repo_id, api = f"{USER}/slm", HfApi()
    push(folder, repo_id)

    with pytest.raises(HFValidationError):  # the client refuses it before sending
        push(folder, f"{USER}/bad--name")
    response = get_session().post(f"{hub_server.url}/api/repos/create", json={"name": "bad name!"},
                                  headers={"Authorization": "Bearer hf_test_token"})
    with pytest.raises(BadRequestError):  # and so does the server, for a client that would send it
        hf_raise_for_status(response)
    with pytest.raises(HfHubHTTPError) as forbidden:
        api.create_repo("someone-else/slm")
    assert forbidden.value.response.status_code == 403

    with pytest.raises(RepositoryNotFoundError):
        SpeechLMPipeline.from_pretrained(f"{USER}/missing")
    with pytest.raises(RepositoryNotFoundError):
        pull(f"{USER}/missing")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "vocoder/missing.safetensors")
    with pytest.raises(RevisionNotFoundError):
        pull(repo_id, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        SpeechLMPipeline.from_pretrained(repo_id, revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):  # commits go to existing branches only
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="x.json", repo_id=repo_id, revision="no-such-branch")

    lfs_line = {"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": "ab" * 32, "size": 3}}
    body = "\n".join(json.dumps(x) for x in ({"key": "header", "value": {"summary": "s"}}, lfs_line))
    response = get_session().post(f"{hub_server.url}/api/models/{repo_id}/commit/main", content=body.encode(),
                                  headers={"Authorization": "Bearer hf_test_token"})
    with pytest.raises(BadRequestError, match="was not uploaded"):  # a pointer to LFS content nobody uploaded
        hf_raise_for_status(response)

    incomplete = save_variant(components_transformers_parts(0), tmp_path / "incomplete")
    shutil.rmtree(incomplete / "language_model")
    with pytest.raises(PipelineLoadError, match="language_model"):
        push(incomplete, f"{USER}/incomplete")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="safetensors only"):
        push(pickled, f"{USER}/pickled")
    with pytest.raises(RepositoryNotFoundError):  # refused before anything reached the Hub
        api.model_info(f"{USER}/pickled")
    assert not hub_server.errors


def test_server_protocol_details(hub_server):
    """The server behaves like the Hub where the client relies on it: 409s, PRs, deletions, README metadata, S3."""
    api, repo_id = HfApi(), f"{USER}/protocol"
    api.create_repo(repo_id)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(repo_id)
    assert conflict.value.response.status_code == 409
    api.create_repo(repo_id, exist_ok=True)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a/b.txt", repo_id=repo_id)
    info = api.upload_file(path_or_fileobj=b"v2", path_in_repo="a/b.txt", repo_id=repo_id, create_pr=True)
    assert info.pr_url.endswith("/discussions/1")
    assert Path(hf_hub_download(repo_id, "a/b.txt")).read_bytes() == b"v1"
    assert Path(hf_hub_download(repo_id, "a/b.txt", revision="refs/pr/1")).read_bytes() == b"v2"
    assert [r.name for r in api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests] == ["refs/pr/1"]
    with pytest.raises(HfHubHTTPError) as stale:  # parent_commit guards against concurrent pushes
        api.upload_file(path_or_fileobj=b"v3", path_in_repo="c.txt", repo_id=repo_id, parent_commit="0" * 40)
    assert stale.value.response.status_code == 412
    api.delete_file("a/b.txt", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("a/b.txt", repo_id=repo_id)
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=b"---\n- not a mapping\n---\n", path_in_repo="README.md", repo_id=repo_id)
    with pytest.raises(BadRequestError):
        api.create_branch(repo_id, branch="bad..name")

    blob = b"\0binary" * 10  # binary content goes to LFS even without a matching .gitattributes pattern
    api.upload_file(path_or_fileobj=blob, path_in_repo="blob.dat", repo_id=repo_id)
    entry = hub_server.repo(repo_id).commits[api.model_info(repo_id).sha].files["blob.dat"]
    assert entry.lfs_oid == hashlib.sha256(blob).hexdigest()
    head = get_session().head(f"{hub_server.url}/{repo_id}/resolve/main/blob.dat", follow_redirects=False)
    assert head.status_code == 302 and head.headers["X-Linked-Size"] == str(len(blob))
    location = head.headers["Location"]
    assert location.startswith(hub_server.storage_url)  # another origin: the client drops its token there
    assert get_session().get(location).content == blob
    assert get_session().get(location, headers={"Authorization": "Bearer hf_test_token"}).status_code == 400
    assert get_session().get(location.replace("sig=", "sig=0")).status_code == 403
    assert_client_fully_served(hub_server)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_push_pull(hub_server, tmp_path, capsys):
    folder = save_variant(components_transformers_parts(0), tmp_path / "variant")
    repo_id = f"{USER}/slm-cli"
    assert cli_main(["push", str(folder), repo_id, "--revision", "v1", "--private"]) == 0
    assert HfApi().model_info(repo_id).private is True
    out = tmp_path / "out"
    assert cli_main(["pull", repo_id, "--revision", "v1", "--output", str(out)]) == 0
    assert file_hashes(out) == file_hashes(folder)
    assert cli_main(["pull", repo_id, "--revision", "nope", "--output", str(tmp_path / "x")]) == 1
    assert "nope" in capsys.readouterr().err
    # a card is updated in a pulled folder, never in the Hub cache that a repo id loads from
    from hf_slm.pipelines.model_card import update_model_card

    with pytest.raises(ValueError, match="read-only cache"):
        update_model_card(SpeechLMPipeline.from_pretrained(repo_id, revision="v1"))
    assert cli_main(["card", str(out), "--repo-id", repo_id]) == 0
    assert f'AutoModel.from_pretrained("{repo_id}", subfolder="language_model"' in (out / "README.md").read_text()
