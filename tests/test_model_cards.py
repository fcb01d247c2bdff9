"""Model cards: each variant family renders from tiny pipelines, its metadata validates on the loopback Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from transformers import LlamaConfig

from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM
from hf_slm.pipelines import SpeechLMPipeline
from hf_slm.pipelines.model_card import (
    collect_eval_results,
    detect_family,
    render_model_card,
    update_model_card,
    write_eval_results,
)
from tiny_components import NUM_UNITS, tiny_codec, tiny_mel_vocoder, tiny_pipeline, tiny_speech_lm

PAIRS = {"accuracy": 0.625, "accuracy_normalized": 0.5, "n": 8, "items": [{"x": 1}],
         "per_phenomenon": {"word_vs_nonword": {"accuracy": 0.625, "n": 8}}}
ABX = {"units": {"within_speaker_error": 0.125, "between_speaker_error": 0.25, "distance": "hamming"}, "words": ["a"]}
RESYNTH = {"wer_original": 0.5, "wer_resynthesized": 0.375, "cer_original": 0.25, "cer_resynthesized": 0.2,
           "mel_distance": 0.4, "n": 4, "items": []}

TASKS = {"voices": ["en-gb"], "seed": 1, "num_examples": 4,  # the shape `evaluate instruct-tasks` writes
         "asr": {"wer": 0.8125, "exact_match": 0.0, "n": 4, "items": []},
         "tts": {"wer": 0.9375, "wer_espeak": 0.4375, "n": 4, "asr": "pocketsphinx", "items": []},
         "intent": {"accuracy": 0.75, "chance": 0.2, "majority_rate": 0.5, "n": 4, "items": []},
         "silence": {"silence_rate": 1.0, "answer_rate": 0.5, "balanced_accuracy": 0.75, "n_queries": 4,
                     "n_non_queries": 4, "silence_rate_by_kind": {"noise": 1.0}}}  # fmt: skip


def twist_pipeline():
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2)
    lm = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=NUM_UNITS, text_vocab_size=20))
    pipe = tiny_pipeline()
    pipe.register_modules(language_model=lm.eval())
    return pipe


def instruct_pipeline():
    from hf_slm.instruct.tuning import attach_adapter

    pipe = tiny_pipeline()
    pipe.register_modules(language_model=attach_adapter(tiny_speech_lm()))
    return pipe


def codec_pipeline():
    pipe = tiny_pipeline()
    pipe.register_modules(speech_tokenizer=tiny_codec(), vocoder=tiny_mel_vocoder())
    return pipe


FAMILIES = {"gslm": tiny_pipeline, "twist": twist_pipeline, "instruct": instruct_pipeline, "codec_lm": codec_pipeline}


@pytest.fixture
def eval_files(tmp_path):
    paths = []
    for name, data in (("pairs", PAIRS), ("abx", ABX), ("resynthesis", RESYNTH)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    return paths


def test_collect_eval_results_keeps_summaries_only(eval_files, tmp_path):
    results = collect_eval_results(eval_files)
    assert results["pairs"]["pairs"]["accuracy"] == 0.625 and "items" not in results["pairs"]["pairs"]
    assert results["abx"] == {"units": ABX["units"]}
    assert results["resynthesis"]["wer_resynthesized"] == 0.375 and "items" not in results["resynthesis"]
    target = write_eval_results(tmp_path, eval_files[:1])
    write_eval_results(tmp_path, eval_files[1:])  # merged into the same file
    assert set(json.loads(target.read_text())) == {"pairs", "abx", "resynthesis"}
    (tmp_path / "other.json").write_text(json.dumps({"loss": 1.0}))
    with pytest.raises(ValueError, match="other.json"):
        collect_eval_results([tmp_path / "other.json"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_card_renders_for_each_family(family, eval_files):
    pipe = FAMILIES[family]()
    assert detect_family(pipe) == family
    card = render_model_card(pipe, eval_results=eval_files, repo_id="tester/tiny")
    meta = yaml.safe_load(str(card).split("---")[1])
    assert meta["library_name"] == "hf_slm" and meta["license"] == "apache-2.0"
    assert {"hf_slm", "speech-language-model", "audio"} <= set(meta["tags"])
    metrics = {m["name"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["pair accuracy"] == 0.625 and metrics["WER of resynthesised speech"] == 0.375
    assert metrics["ABX between-speaker error (units)"] == 0.25
    body = card.text
    assert "| `language_model` |" in body and "0.625" in body and 'from_pretrained("tester/tiny")' in body
    if family == "instruct":
        assert "| `adapter` |" in body and "LoRA" in body
    if family == "twist":
        assert "text vocab 20" in body


def test_card_without_results_says_so():
    card = render_model_card(tiny_pipeline())
    assert "model-index" not in card.data.to_dict() and "Not evaluated yet" in card.text


def test_cards_validate_on_the_hub_and_broken_ones_fail(hub_server, eval_files):
    for family, build in FAMILIES.items():
        render_model_card(build(), eval_results=eval_files).validate()
    good = str(render_model_card(tiny_pipeline(), eval_results=eval_files))
    broken = good.replace("    - type: accuracy\n", "    - kind: accuracy\n", 1)
    assert broken != good
    with pytest.raises(ValueError, match="tags"):
        ModelCard(good.replace("tags:\n", "tags:\n- {a: 1}\n", 1)).validate()
    # A broken model-index does not survive the client's own parse, so push the raw text: the Hub refuses the commit.
    api, repo_id = HfApi(), "tester/broken-card"
    api.create_repo(repo_id)
    with pytest.raises(Exception, match=r"metrics\[0\]\.type"):
        api.upload_file(path_or_fileobj=broken.encode(), path_in_repo="README.md", repo_id=repo_id)
    api.upload_file(path_or_fileobj=good.encode(), path_in_repo="README.md", repo_id=repo_id)


def test_save_and_push_write_the_card(hub_server, tmp_path, eval_files):
    pipe = tiny_pipeline()
    folder = pipe.save_pretrained(tmp_path / "variant")
    write_eval_results(folder, eval_files)
    loaded = SpeechLMPipeline.from_pretrained(folder)
    assert "0.625" in loaded.model_card()  # eval_results.json of the loaded folder feeds the card
    repo_id = "tester/tiny-card"
    loaded.push_to_hub(repo_id)
    readme = hf_hub_download(repo_id, "README.md")
    card = ModelCard.load(readme)
    assert card.data.library_name == "hf_slm" and "gslm" in card.data.tags
    assert card.data.eval_results[0].metric_value == 0.625
    assert "README.md" in HfApi().list_repo_files(repo_id)
    # a saved or pushed variant carries its modelling code, and its card says so
    assert "the modelling code ships in the subfolder" in card.text and "embedded in the `hf_slm`" not in card.text
    assert f'AutoModel.from_pretrained("{repo_id}", subfolder="language_model"' in card.text
    assert any(name.startswith("language_model/") and name.endswith(".py") for name in HfApi().list_repo_files(repo_id))


@pytest.mark.parametrize("name", ["default", "twist-default", "instruct-default", "speech-llm-default",
                                  "codec-default", "tts-default"])  # fmt: skip
def test_embedded_cards_are_what_their_folders_render_and_say_they_need_hf_slm(name):
    """The shipped READMEs are generated: a template change must re-render them (save_embedded_variant does)."""
    import hf_slm.pipelines as pipelines
    from hf_slm.pipelines.pipeline_utils import embedded_pipeline_path

    folder = Path(embedded_pipeline_path(name))
    cls = getattr(pipelines, json.loads((folder / "pipeline_index.json").read_text())["_class_name"])
    shipped = (folder / "README.md").read_text(encoding="utf-8")
    assert shipped == str(render_model_card(cls.from_pretrained(folder), repo_id=name, embedded=True))
    if name != "default-twist":  # loaded from its folder, a card knows it is embedded and under which name
        assert shipped == str(render_model_card(cls.from_pretrained(name)))
    assert not list(folder.rglob("*.py"))  # the package serves the code: the card must not claim the folder has it
    assert f'`"{name}"` names the copy embedded in the `hf_slm` package' in shipped
    assert f'AutoModel.from_pretrained("<namespace>/{name}"' in shipped and "ships in the subfolder" not in shipped


def test_default_variant_card_matches_its_eval_results():
    from importlib.resources import files

    folder = files("hf_slm") / "default_pipeline"
    card = ModelCard.load(str(folder / "README.md"))
    results = json.loads((folder / "eval_results.json").read_text())
    index = {(r.dataset_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    for bench in ("pairs", "open_vocabulary_pairs"):  # the grammar's words, and words never in its training text
        assert index["hf_slm/" + bench, "pair accuracy"] == round(results["pairs"][bench]["accuracy"], 4)
        assert "items" not in results["pairs"][bench]
    real = results["resynthesis_real_speech"]  # issue 18: resynthesis of real speech next to espeak-ng's
    assert real["real_speech"] == "librivox" and results["resynthesis"]["texts"]
    assert index["hf_slm/real_speech_librivox", "CER of resynthesised real speech"] == round(real["cer_resynthesized"], 4)
    assert f"| {real['dnsmos_ovrl_original']:.2f} / {real['dnsmos_ovrl_resynthesized']:.2f} |" in card.text
    assert f"/ {results['codec']['default']['speaker_similarity']:.3f} |" in card.text  # speaker similarity
    generation = results["generation"]  # continuation perplexity / VERT on held-out open-vocabulary prompts
    assert generation["texts"] == "open-eval" and generation["num_prompts"] >= 30
    assert f"| AUC of perplexity over VERT | {generation['auc']:.3f} |" in card.text


def test_real_speech_resynthesis_is_kept_apart_and_reaches_the_card(tmp_path):
    """`evaluate resynthesis --real-speech` output gets its own entry (it used to overwrite the espeak-ng one), and
    the card gives WER, CER and DNSMOS of each set with what was spoken."""
    synthetic = {**RESYNTH, "texts": "heldout.txt", "voice": "en-us", "rate": 175, "dnsmos_ovrl_original": 2.64,
                 "dnsmos_ovrl_resynthesized": 2.41}  # fmt: skip
    real = {**RESYNTH, "real_speech": "librivox", "wer_resynthesized": 0.789, "cer_resynthesized": 0.511, "n": 5,
            "dnsmos_ovrl_original": 3.13, "dnsmos_ovrl_resynthesized": 1.82}  # fmt: skip
    paths = [tmp_path / "real.json", tmp_path / "synthetic.json"]
    for path, data in zip(paths, (real, synthetic)):
        path.write_text(json.dumps(data))
    results = collect_eval_results(paths)
    assert results["resynthesis"]["texts"] == "heldout.txt" and results["resynthesis_real_speech"]["n"] == 5
    assert collect_eval_results([write_eval_results(tmp_path, paths)]) == results  # merged form reads back
    card = render_model_card(tiny_pipeline(), eval_results=results, repo_id="tester/tiny")
    metrics = {m["name"]: m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["WER of resynthesised speech"] == 0.375 and metrics["CER of resynthesised real speech"] == 0.511
    assert "| resynthesis of espeak-ng en-us, `heldout.txt` (n=4, ASR: ?) |" in card.text
    assert "| 0.500 / 0.789; 0.250 / 0.511 |" in card.text and "| 3.13 / 1.82 |" in card.text
    assert "| 2.64 / 2.41 |" in card.text and "`hf-slm evaluate resynthesis`" in card.text


def test_instruct_task_results_reach_the_card(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(TASKS))
    results = collect_eval_results([path])
    assert set(results) == {"instruct_tasks"} and "items" not in results["instruct_tasks"]["asr"]
    assert collect_eval_results([write_eval_results(tmp_path, [path])]) == results  # merged form reads back
    card = render_model_card(instruct_pipeline(), eval_results=results, repo_id="tester/instruct")
    metrics = {m["name"]: m["value"] for r in card.data.to_dict()["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["WER"] == 0.8125 and metrics["ASR WER of the spoken reply"] == 0.9375
    assert metrics["accuracy"] == 0.75 and metrics["balanced accuracy"] == 0.75
    assert "| 0.938 / 0.438 |" in card.text and "0.750 (0.200)" in card.text and "| 1.000 / 0.500 |" in card.text
    # only the instruct figures: the card names the command that makes them, and no pair benchmark
    assert "Produced by `hf-slm evaluate instruct-tasks` (see" in card.text
    assert "chance pair accuracy" not in card.text


def test_cli_card_merges_results_and_rerenders_and_changes_nothing_on_a_bad_file(tmp_path, eval_files, capsys):
    from hf_slm.cli import main as cli_main

    folder = tiny_pipeline().save_pretrained(tmp_path / "variant")
    assert "Not evaluated yet" in (folder / "README.md").read_text()
    assert cli_main(["card", str(folder), "--results", *map(str, eval_files[:2])]) == 0
    card = (folder / "README.md").read_text()
    assert "0.625" in card and "Not evaluated yet" not in card
    assert 'AutoModel.from_pretrained("variant", subfolder="language_model"' in card  # the folder's name, as saved
    assert set(json.loads((folder / "eval_results.json").read_text())) == {"pairs", "abx"}
    # a later result is merged beside the earlier ones; --repo-id names the card's Hub repo
    assert cli_main(["card", str(folder), "--results", str(eval_files[2]), "--repo-id", "me/tiny"]) == 0
    assert set(json.loads((folder / "eval_results.json").read_text())) == {"pairs", "abx", "resynthesis"}
    assert 'AutoModel.from_pretrained("me/tiny"' in (folder / "README.md").read_text()
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    (tmp_path / "loss.json").write_text(json.dumps({"loss": 1.0}))
    capsys.readouterr()
    assert cli_main(["card", str(folder), "--results", str(tmp_path / "loss.json")]) == 1
    assert "loss.json" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    # a component folder, a missing folder and a pipeline without a folder are refused by name
    assert cli_main(["card", str(folder / "language_model")]) == 1
    assert "pipeline_index.json is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["card", str(tmp_path / "nowhere")])
    assert "nowhere" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not loaded from a local variant folder"):
        update_model_card(tiny_pipeline(), eval_files)


def test_voice_and_codec_results_reach_the_card(tmp_path):
    """`hf-slm evaluate voice` / `codec` output (several systems each: the variant and its baselines) merges like the
    other kinds, drops per-item data, reads back from eval_results.json, and fills a row per system."""
    voice = {"systems": {"mine": {"speaker_similarity": 0.6521, "std": 0.06, "n": 32, "per_item": [0.6] * 32},
                         "default": {"speaker_similarity": 0.6159, "std": 0.09, "n": 32, "per_item": [0.6] * 32}},
             "references": {"same_voice": {"speaker_similarity": 0.838, "std": 0.06, "n": 32, "per_item": []},
                            "other_voice": {"speaker_similarity": 0.604, "std": 0.07, "n": 32, "per_item": []}},
             "n": 32, "prompt_seconds": 1.5, "new_seconds": 2.0, "temperature": 0.8, "seed": 0}  # fmt: skip
    codec = {"systems": {"mine": {"bitrate_bps": 1600.0, "mel_distance": 0.521, "stoi": 0.706,
                                  "speaker_similarity": 0.818, "n": 32, "per_item": {"stoi": [0.7] * 32}}}}  # fmt: skip
    paths = [tmp_path / "voice.json", tmp_path / "codec.json"]
    for path, data in zip(paths, (voice, codec)):
        path.write_text(json.dumps(data))
    results = collect_eval_results(paths)
    assert set(results) == {"voice", "codec"} and "per_item" not in results["voice"]["systems"]["mine"]
    assert "per_item" not in results["codec"]["mine"] and results["voice"]["prompt_seconds"] == 1.5
    assert collect_eval_results([write_eval_results(tmp_path, paths)]) == results  # merged form reads back
    body = render_model_card(FAMILIES["gslm"](), eval_results=results, repo_id="tester/tiny").text
    assert "| continuation voice: `mine` (32 unseen-voice prompts of 1.5 s, next 2.0 s) |" in body
    assert "| 0.652 |" in body and "| 0.616 |" in body and "reference: same voice" in body
    assert "| 0.521 / 0.706 / 0.818 |" in body and "(1600 bps, n=32)" in body


def test_embedded_wording_only_where_the_folder_is_the_packages(tmp_path, monkeypatch):
    """save_embedded_variant stores any run the package's way (no code); only the package's folder is "embedded", and
    save_pretrained of an embedded variant writes the code and a card that says it ships."""
    import hf_slm
    from hf_slm.pipelines.model_card import save_embedded_variant

    run = save_embedded_variant(tiny_pipeline(), tmp_path / "run_variant", repo_id="run_variant", float16=("vocoder",))
    card = (run / "README.md").read_text()
    assert "embedded in the `hf_slm` package" not in card and 'AutoModel.from_pretrained("run_variant"' in card
    package_copy = tmp_path / "package" / "default_codec_pipeline"
    monkeypatch.setattr(hf_slm, "DEFAULT_CODEC_PIPELINE", str(package_copy))
    save_embedded_variant(tiny_pipeline(), package_copy, repo_id="codec-default")
    card = (package_copy / "README.md").read_text()
    assert '`"codec-default"` names the copy embedded' in card and not list(package_copy.rglob("*.py"))

    saved = SpeechLMPipeline.from_pretrained("codec-default").save_pretrained(tmp_path / "mine")
    card = (saved / "README.md").read_text()
    assert "ships in the subfolder" in card and "names the copy embedded" not in card
    assert 'AutoModel.from_pretrained("mine", subfolder="language_model"' in card and list(saved.rglob("*.py"))
