"""Generation quality and diversity: judge perplexity of continuations, VERT, the AUC over temperatures, the plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation_helpers import one_torch_thread, synthesize, tiny_lm, tiny_pipeline  # noqa: F401
from hf_slm.evaluation.generation import evaluate_generation, judge_nll, plot_generation, ppl_vert_auc

TEXTS = ["the small dog runs to the red house", "many horses work quickly", "our chair is wooden"]


def test_auc_hand_checked():
    # points sorted by VERT: (0.1, 10), (0.3, 20), (0.5, 20) -> 0.2 * 15 + 0.2 * 20
    assert ppl_vert_auc([0.3, 0.1, 0.5], [20, 10, 20]) == pytest.approx(7.0)
    # on a fixed range, held constant outside the points: [0, 0.1] at 10, then as above, [0.5, 0.6] at 20
    assert ppl_vert_auc([0.3, 0.1, 0.5], [20, 10, 20], vert_range=(0.0, 0.6)) == pytest.approx(7.0 + 1.0 + 2.0)
    assert ppl_vert_auc([0.1, 0.5, float("nan")], [10, 10, 3]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least 2"):
        ppl_vert_auc([0.1], [1.0])


def test_judge_nll_scores_only_the_continuation():
    lm = tiny_lm()
    prompt, continuation = torch.tensor([1, 2, 3]), torch.tensor([4, 5])
    sums, counts = judge_nll(lm, [prompt], [continuation])
    assert counts.tolist() == [2]
    ids, mask = lm.units_to_input_ids([torch.cat([prompt, continuation])])
    token_nll = lm.log_likelihood(ids, mask).token_nll[0]
    assert sums[0].item() == pytest.approx(token_nll[-2:].sum().item(), rel=1e-5)
    with pytest.raises(ValueError, match="knows 24 units"):
        judge_nll(lm, [prompt], [torch.tensor([99])])


@pytest.fixture(scope="module")
def pipeline():
    return tiny_pipeline(TEXTS, with_vocoder=False)


def test_generation_metrics_over_temperatures_and_plot(pipeline, tmp_path):
    prompts = synthesize(TEXTS)
    result = evaluate_generation(pipeline, prompts, temperatures=(0.5, 1.0, 2.0), max_new_tokens=30, num_samples=2)
    rows = result["per_temperature"]
    assert [r["temperature"] for r in rows] == [0.5, 1.0, 2.0] and result["num_prompts"] == 3
    for row in rows:
        assert 0 <= row["vert"] <= 1 and row["perplexity"] > 1
    # an untrained LM judged by itself: sampling hotter gives less likely continuations
    assert rows[-1]["perplexity"] > rows[0]["perplexity"]
    assert math.isfinite(result["auc"]) and result["auc"] == pytest.approx(
        ppl_vert_auc([r["vert"] for r in rows], [r["perplexity"] for r in rows])
    )
    png = plot_generation(result, tmp_path / "generation.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # another judge with the same units
    judged = evaluate_generation(pipeline, prompts, temperatures=(1.0,), max_new_tokens=10, judge=tiny_lm(seed=1))
    assert judged["judge"] == "SpeechLMForCausalLM" and np.isfinite(judged["per_temperature"][0]["perplexity"])


def test_generation_rejects_bad_settings(pipeline):
    with pytest.raises(ValueError, match="temperatures must be positive"):
        evaluate_generation(pipeline, synthesize(TEXTS[:1]), temperatures=(0.0,))
    with pytest.raises(ValueError, match="prompt_fraction"):
        evaluate_generation(pipeline, synthesize(TEXTS[:1]), prompt_fraction=1.5)
