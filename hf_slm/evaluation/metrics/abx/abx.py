"""ABX discriminability of speech representations, within and between speakers, with frame-wise DTW.

Self-contained `evaluate` module (numpy only): ``evaluate.load("hf_slm/evaluation/metrics/abx")`` or
``hf_slm.evaluation.load_metric("abx")``.
"""

from __future__ import annotations

from itertools import permutations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
ABX error (Schatz et al., 2013; ZeroSpeech; GSLM's representation metric). Items are frame sequences (features or
units of one spoken token) with a category (e.g. the word or phone it is) and a speaker. For a triplet (A, B, X)
with A and X of one category and B of another, the representation is right when X is closer to A than to B:
d(A, X) < d(B, X) (a tie counts half). d is the DTW distance: frame distances are aligned by dynamic time warping
(steps right, down, diagonal) and averaged along the best path, so tokens of different lengths compare.

- within-speaker: A, B and X all come from one speaker (X is another token than A).
- between-speaker: A and B come from one speaker, X from another.

Scores are averaged over triplets in each (category of A, category of B, speaker(s)) cell, then over cells; the
error is 1 - that average, as a fraction (0 = perfectly separable, 0.5 = chance).
"""

_KWARGS_DESCRIPTION = """
Args:
    features (`list[list[list[float]]]`): one `[frames, dim]` array per item (for units, one-hot rows or `[frames, 1]`
        unit ids with `distance="hamming"`).
    labels (`list[str]`): category of each item.
    speakers (`list[str]`): speaker of each item.
    distance (`str`, defaults to `"cosine"`): frame distance: `"cosine"` (angular, arccos(cos) / pi, in [0, 1], as
        ZeroSpeech's ABX), `"euclidean"`, or `"hamming"` (0 if two frames are equal, else 1).
Returns:
    within_speaker_error, between_speaker_error (`float`): fractions; NaN when no triplet of that kind exists
        (within needs 2 tokens of a category from one speaker; between needs 2 speakers).
    within_speaker_triplets, between_speaker_triplets (`int`): how many triplets were scored.
Examples:
    >>> import evaluate  # doctest: +SKIP
    >>> abx = evaluate.load("hf_slm/evaluation/metrics/abx")  # doctest: +SKIP
    >>> a, b = [[1.0, 0.0]], [[0.0, 1.0]]
    >>> abx.compute(features=[a, a, b, b], labels=["a", "a", "b", "b"], speakers=["s", "t", "s", "t"])  # doctest: +SKIP
"""

DISTANCES = ("cosine", "euclidean", "hamming")


def frame_distances(a: np.ndarray, b: np.ndarray, distance: str = "cosine") -> np.ndarray:
    """Frame distance matrices `[..., Ta, Tb]` between `a [..., Ta, D]` and `b [..., Tb, D]`."""
    if distance == "cosine":
        a_n = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
        b_n = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
        return np.arccos(np.clip(a_n @ np.swapaxes(b_n, -1, -2), -1.0, 1.0)) / np.pi
    if distance == "euclidean":
        squared = (a**2).sum(-1)[..., :, None] + (b**2).sum(-1)[..., None, :] - 2 * a @ np.swapaxes(b, -1, -2)
        return np.sqrt(np.maximum(squared, 0.0))
    if distance == "hamming":
        return (a[..., :, None, :] != b[..., None, :, :]).any(-1).astype(np.float64)
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def dtw_distance(cost: np.ndarray, lengths_a=None, lengths_b=None) -> np.ndarray:
    """Path-averaged DTW cost of a batch of cost matrices `[B, Ta, Tb]` (or one `[Ta, Tb]`).

    `lengths_a` / `lengths_b` give the valid size of each padded matrix. The recursion keeps, per cell, the cumulated
    cost of the cheapest path and that path's length; the result is cumulated cost / path length at the end cell.
    """
    single = cost.ndim == 2
    cost = np.asarray(cost, dtype=np.float64)[None] if single else np.asarray(cost, dtype=np.float64)
    batch, rows, cols = cost.shape
    lengths_a = np.full(batch, rows) if lengths_a is None else np.asarray(lengths_a)
    lengths_b = np.full(batch, cols) if lengths_b is None else np.asarray(lengths_b)
    total = np.full((batch, rows + 1, cols + 1), np.inf)
    steps = np.zeros((batch, rows + 1, cols + 1))
    total[:, 0, 0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            candidates = np.stack([total[:, i - 1, j - 1], total[:, i - 1, j], total[:, i, j - 1]])
            lengths = np.stack([steps[:, i - 1, j - 1], steps[:, i - 1, j], steps[:, i, j - 1]])
            best = candidates.argmin(0)
            pick = np.arange(batch)
            total[:, i, j] = candidates[best, pick] + cost[:, i - 1, j - 1]
            steps[:, i, j] = lengths[best, pick] + 1
    pick = np.arange(batch)
    result = total[pick, lengths_a, lengths_b] / steps[pick, lengths_a, lengths_b]
    return result[0] if single else result


def pairwise_dtw(features, distance: str = "cosine", batch_size: int = 256) -> np.ndarray:
    """Symmetric `[N, N]` matrix of DTW distances between all items (batched over pairs, padded per batch)."""
    items = [np.asarray(f, dtype=np.float64) for f in features]
    for index, item in enumerate(items):
        if item.ndim != 2 or item.shape[0] == 0:
            raise ValueError(f"item {index} must be a non-empty [frames, dim] array, got shape {item.shape}")
        if item.shape[1] != items[0].shape[1]:
            raise ValueError(f"item {index} has feature dim {item.shape[1]}, item 0 has {items[0].shape[1]}")
    n = len(items)
    matrix = np.zeros((n, n))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    pairs.sort(key=lambda p: (len(items[p[0]]), len(items[p[1]])))  # similar lengths per batch: little padding
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        la = np.array([len(items[i]) for i, _ in chunk])
        lb = np.array([len(items[j]) for _, j in chunk])
        dim = items[0].shape[1]
        a = np.zeros((len(chunk), la.max(), dim))
        b = np.zeros((len(chunk), lb.max(), dim))
        for k, (i, j) in enumerate(chunk):
            a[k, : la[k]] = items[i]
            b[k, : lb[k]] = items[j]
        values = dtw_distance(frame_distances(a, b, distance), la, lb)
        for k, (i, j) in enumerate(chunk):
            matrix[i, j] = matrix[j, i] = values[k]
    return matrix


def _cell_score(dist, a_items, b_items, x_items, exclude_same: bool):
    d_ax = dist[np.ix_(a_items, x_items)]  # [A, X]
    d_bx = dist[np.ix_(b_items, x_items)]  # [B, X]
    score = (d_ax[:, None, :] < d_bx[None, :, :]) + 0.5 * (d_ax[:, None, :] == d_bx[None, :, :])
    valid = np.ones_like(score, dtype=bool)
    if exclude_same:
        valid &= (np.asarray(a_items)[:, None] != np.asarray(x_items)[None, :])[:, None, :]
    count = int(valid.sum())
    return (float(score[valid].mean()) if count else None), count


def abx_from_distances(dist: np.ndarray, labels, speakers) -> dict:
    """Within- and between-speaker ABX errors from a precomputed `[N, N]` item distance matrix."""
    labels, speakers = list(labels), list(speakers)
    if not (len(labels) == len(speakers) == dist.shape[0] == dist.shape[1]):
        raise ValueError(f"{dist.shape} distances for {len(labels)} labels and {len(speakers)} speakers")
    groups: dict[tuple, list[int]] = {}
    for index, key in enumerate(zip(labels, speakers)):
        groups.setdefault(key, []).append(index)
    categories, voices = sorted(set(labels)), sorted(set(speakers))
    result = {}
    for kind in ("within", "between"):
        cells, triplets = [], 0
        speaker_pairs = [(s, s) for s in voices] if kind == "within" else list(permutations(voices, 2))
        for s_ab, s_x in speaker_pairs:
            for cat_a, cat_b in permutations(categories, 2):
                a, b, x = groups.get((cat_a, s_ab)), groups.get((cat_b, s_ab)), groups.get((cat_a, s_x))
                if not (a and b and x):
                    continue
                score, count = _cell_score(dist, a, b, x, exclude_same=kind == "within")
                if score is not None:
                    cells.append(score)
                    triplets += count
        result[f"{kind}_speaker_error"] = float(1.0 - np.mean(cells)) if cells else float("nan")
        result[f"{kind}_speaker_triplets"] = triplets
    return result


def abx(features, labels, speakers, distance: str = "cosine") -> dict:
    """ABX errors of items given as frame arrays (see the module docstring)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if len(set(labels)) < 2:
        raise ValueError(f"ABX needs at least 2 categories, got {sorted(set(labels))}")
    return abx_from_distances(pairwise_dtw(features, distance), labels, speakers)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Abx(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Schatz et al., 2013, Evaluating speech features with the Minimal-Pair ABX task.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "features": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                    "labels": datasets.Value("string"),
                    "speakers": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, features, labels, speakers, distance="cosine"):
        return abx(features, labels, speakers, distance=distance)


__all__ = ["Abx", "abx", "abx_from_distances", "dtw_distance", "frame_distances", "pairwise_dtw"]
