"""`hf-slm evaluate ...` on a tiny saved pipeline: every command writes JSON + Markdown + PNG and prints a table."""

from __future__ import annotations

import json

import pytest

from evaluation_helpers import one_torch_thread, tiny_pipeline, write_zerospeech_tree  # noqa: F401
from hf_slm.cli import main

TEXTS = ["the small dog runs to the red house", "many horses work quickly", "bat pat mat sat"]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    tiny_pipeline(TEXTS).save_pretrained(path)
    return str(path)


def _outputs(out):
    assert out.is_file() and out.with_suffix(".md").is_file()
    assert list(out.parent.glob(f"{out.stem}.*.png"))
    return json.loads(out.read_text())


def test_build_pairs_then_pairs(pipeline_dir, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    assert main(["evaluate", "build-pairs", "--output", str(pairs), "--num-lexical", "3", "--num-per-phenomenon", "1",
                 "--phenomena", "agreement_simple,agreement_copula"]) == 0  # fmt: skip
    assert len(pairs.read_text().splitlines()) == 5
    out = tmp_path / "pairs.json"
    assert main(["evaluate", "pairs", "--pipeline", pipeline_dir, "--pairs", str(pairs), "--output", str(out)]) == 0
    result = _outputs(out)
    assert result["n"] == 5 and 0 <= result["accuracy"] <= 1 and len(result["items"]) == 5
    assert "word_vs_nonword" in capsys.readouterr().out


def test_storycloze_builder_and_zerospeech_layout(pipeline_dir, tmp_path, capsys):
    pairs = tmp_path / "stories.jsonl"
    assert main(["evaluate", "build-pairs", "--kinds", "storycloze", "--num-storycloze", "4", "--output", str(pairs)]) == 0
    stories = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert len(stories) == 4 and {p["phenomenon"] for p in stories} == {"topic_storycloze"}
    write_zerospeech_tree(tmp_path / "zr2021", "syntactic", [stories[0] | {"phenomenon": "storycloze"}])
    out = tmp_path / "zr.json"
    assert main(["evaluate", "pairs", "--pipeline", pipeline_dir, "--zerospeech", str(tmp_path / "zr2021"),
                 "--task", "syntactic", "--output", str(out)]) == 0  # fmt: skip
    result = _outputs(out)
    assert result["n"] == 1 and result["task"] == "syntactic" and result["items"][0]["good"] == stories[0]["good"]
    assert "storycloze" in capsys.readouterr().out


def test_abx_resynthesis_generation(pipeline_dir, tmp_path, capsys):
    out = tmp_path / "abx.json"
    assert main(["evaluate", "abx", "--pipeline", pipeline_dir, "--words", "bat,pat", "--voices", "en-us,en-us+m3",
                 "--output", str(out)]) == 0  # fmt: skip
    result = _outputs(out)
    assert set(result["features"]) >= {"within_speaker_error", "between_speaker_error"}
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS[:2]) + "\n")
    out = tmp_path / "resynthesis.json"
    assert main(["evaluate", "resynthesis", "--pipeline", pipeline_dir, "--texts", str(texts), "--output", str(out)]) == 0
    result = _outputs(out)
    assert {"wer_original", "wer_resynthesized", "cer_original", "cer_resynthesized", "mel_distance"} <= set(result)
    assert (result["texts"], result["voice"], result["rate"]) == ("texts.txt", "en-us", 175)  # what was spoken
    out = tmp_path / "generation.json"
    assert main(["evaluate", "generation", "--pipeline", pipeline_dir, "--limit", "2", "--temperatures", "0.8,1.2",
                 "--max-new-tokens", "10", "--num-samples", "2", "--output", str(out)]) == 0  # fmt: skip
    result = _outputs(out)
    assert [r["temperature"] for r in result["per_temperature"]] == [0.8, 1.2]
    assert result["texts"] == "builtin" and result["prompt_fraction"] == 0.5 and result["num_samples"] == 2
    assert "AUC" in capsys.readouterr().out
    # the figures reach the card: merged into eval_results.json (a row per temperature), the command named
    from hf_slm.pipelines import SpeechLMPipeline
    from hf_slm.pipelines.model_card import collect_eval_results, render_model_card, write_eval_results

    merged = collect_eval_results([write_eval_results(tmp_path, [out])])
    assert merged["generation"]["auc"] == result["auc"] and len(merged["generation"]["per_temperature"]) == 2
    card = render_model_card(SpeechLMPipeline.from_pretrained(pipeline_dir), eval_results=merged).text
    assert "| continuations of 2 held-out prompts (`builtin`, first 50 %), 2 each, judged by its own LM |" in card
    high = result["per_temperature"][1]
    assert f"| &nbsp;&nbsp;temperature 1.2 | perplexity / VERT | {high['perplexity']:.2f} / {high['vert']:.3f} |" in card
    assert "Produced by `hf-slm evaluate generation`" in card


def test_errors_reach_the_user_as_one_line(pipeline_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # a missing file is an argument error: argparse's status 2
        main(["evaluate", "pairs", "--pipeline", pipeline_dir, "--pairs", str(tmp_path / "no.jsonl"),
              "--output", str(tmp_path / "o.json")])  # fmt: skip
    assert exit_info.value.code == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["evaluate", "resynthesis", "--pipeline", pipeline_dir, "--output", str(tmp_path / "o.json")]) == 1
    assert "exactly one of --texts" in capsys.readouterr().err
    assert main(["evaluate", "pairs", "--pipeline", pipeline_dir, "--output", str(tmp_path / "o.json")]) == 1
    assert "exactly one of --pairs, --zerospeech" in capsys.readouterr().err
    # instruct-tasks names an unknown task before it loads anything
    assert main(["evaluate", "instruct-tasks", "--pipeline", pipeline_dir, "--tasks", "asr,translation",
                 "--output", str(tmp_path / "o.json")]) == 1  # fmt: skip
    assert "unknown task(s) ['translation']" in capsys.readouterr().err
    assert main(["evaluate", "instruct-tasks", "--pipeline", pipeline_dir, "--num-examples", "1",
                 "--output", str(tmp_path / "o.json")]) == 1  # fmt: skip
    assert "--num-examples must be at least 2" in capsys.readouterr().err
    # ... and a task that recordings cannot measure (TTS, intent need texts chosen for them)
    assert main(["evaluate", "instruct-tasks", "--pipeline", pipeline_dir, "--tasks", "asr,tts", "--audio-dir",
                 str(tmp_path), "--output", str(tmp_path / "o.json")]) == 1  # fmt: skip
    assert "--tasks tts: not measurable on recordings" in capsys.readouterr().err
    for flag in ("--tasks", "--voices"):  # an empty list is an argument error, not the default
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "instruct-tasks", "--pipeline", pipeline_dir, flag, " , ", "--output", str(tmp_path / "o.json")])
        assert exit_info.value.code == 2 and "expected at least one comma-separated value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "instruct-tasks", "--pipeline", pipeline_dir, "--exclude-texts", str(tmp_path / "no.txt"),
              "--output", str(tmp_path / "o.json")])  # fmt: skip
    assert "no.txt" in capsys.readouterr().err


def test_pairs_topline_fits_a_phone_lm_on_the_text_and_scores_the_pairs(tmp_path, capsys):
    pairs, text, out = tmp_path / "pairs.jsonl", tmp_path / "text.txt", tmp_path / "topline.json"
    assert main(["evaluate", "build-pairs", "--kinds", "lexical", "--num-lexical", "6", "--output", str(pairs)]) == 0
    goods = [json.loads(line)["good"] for line in pairs.read_text().splitlines()]
    text.write_text("\n".join(f"the {word} is here" for word in goods) + "\n")
    assert main(["evaluate", "pairs-topline", "--pairs", str(pairs), "--text", str(text), "--order", "3",
                 "--output", str(out)]) == 0  # fmt: skip
    result = _outputs(out)
    assert result["accuracy"] == 1.0 and result["n"] == 6 and result["texts"] == 6 and result["order"] == 3
    assert "word_vs_nonword" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["evaluate", "pairs-topline", "--pairs", str(tmp_path / "missing.jsonl"), "--text", str(text),
              "--output", str(out)])  # fmt: skip
