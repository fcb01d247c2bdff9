"""Mini-batch k-means in torch (CPU or GPU, seeded): no sklearn, no pickle, centroids are a plain tensor.

The algorithm is Sculley's web-scale mini-batch k-means (per-centroid learning rate 1 / count) with k-means++
initialisation on a subsample, which is what `sklearn.cluster.MiniBatchKMeans` does for HuBERT/GSLM unit
tokenizers, plus re-seeding of centroids that stop receiving points.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ..models.unit_encoder.kmeans import assign, squared_distances


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator, show_progress: bool = True) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) with greedy trials, as scikit-learn does."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means++ needs at least num_units={k} points, got {n}")
    n_trials = 2 + int(torch.log(torch.tensor(float(k))).item())
    x = x.float()
    centers = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    first = torch.randint(n, (1,), generator=generator, device=generator.device).to(x.device)
    centers[0] = x[first]
    closest = squared_distances(x, centers[:1]).squeeze(1)
    for i in tqdm(range(1, k), desc="k-means++ init", leave=False, disable=k < 64 or not show_progress):
        total = closest.sum()
        if total <= 0:  # all remaining points coincide with centroids: any point will do
            probs = torch.full_like(closest, 1.0 / n)
        else:
            probs = closest / total
        candidates = torch.multinomial(probs.to(generator.device), n_trials, replacement=True, generator=generator)
        candidates = candidates.to(x.device)
        cand_dist = torch.minimum(closest[None], squared_distances(x, x[candidates]).T)  # [trials, N]
        best = cand_dist.sum(-1).argmin()
        centers[i] = x[candidates[best]]
        closest = cand_dist[best]
    return centers


class MiniBatchKMeans:
    """Mini-batch k-means on torch tensors.

    Args:
        num_clusters: K.
        batch_size: points per update step.
        max_steps: update steps over the streamed batches (the stream is cycled if it is a re-iterable).
        init_size: points kept for k-means++ initialisation (the first ones streamed).
        reassign_after: a centroid that received no point for this many steps is re-seeded on a far point.
        seed: seeds initialisation, shuffling and re-seeding.
        device: where the centroids live ("cpu", "cuda", ...).

    >>> import torch
    >>> x = torch.cat([torch.randn(200, 2) * 0.1 + c for c in (torch.tensor([5.0, 0]), torch.tensor([-5.0, 0]))])
    >>> km = MiniBatchKMeans(2, batch_size=64, max_steps=20, seed=0).fit(x)
    >>> sorted(km.cluster_centers[:, 0].round().tolist())
    [-5.0, 5.0]
    """

    def __init__(
        self,
        num_clusters: int,
        batch_size: int = 10000,
        max_steps: int = 200,
        init_size: int | None = None,
        reassign_after: int = 10,
        tol: float = 0.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        show_progress: bool = True,
    ):
        if num_clusters < 1:
            raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_clusters = num_clusters
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.init_size = init_size if init_size is not None else max(3 * num_clusters, 3 * batch_size)
        self.reassign_after = reassign_after
        self.tol = tol
        self.seed = seed
        self.device = torch.device(device)
        self.show_progress = show_progress
        self.cluster_centers: torch.Tensor | None = None
        self.counts: torch.Tensor | None = None
        self.inertia_: float | None = None

    def _generator(self) -> torch.Generator:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        return gen

    def _batches(self, data: torch.Tensor | Iterable[torch.Tensor], gen: torch.Generator) -> Iterator[torch.Tensor]:
        """Yield [<=batch_size, D] float tensors on self.device, forever (re-iterating the source)."""
        if isinstance(data, torch.Tensor):
            n = data.shape[0]
            while True:
                order = torch.randperm(n, generator=gen)
                for start in range(0, n, self.batch_size):
                    yield data[order[start : start + self.batch_size]].to(self.device, torch.float32)
        while True:
            produced = False
            for chunk in data:
                chunk = torch.as_tensor(chunk)
                if chunk.ndim != 2:
                    raise ValueError(f"k-means batches must be [N, D] tensors, got shape {tuple(chunk.shape)}")
                for start in range(0, chunk.shape[0], self.batch_size):
                    produced = True
                    yield chunk[start : start + self.batch_size].to(self.device, torch.float32)
            if not produced:
                raise ValueError("k-means got an empty stream of features")
            if iter(data) is data:  # a one-shot iterator cannot be replayed
                return

    def fit(
        self, data: torch.Tensor | Iterable[torch.Tensor], init_centers: torch.Tensor | None = None
    ) -> MiniBatchKMeans:
        """Fit on a [N, D] tensor or a re-iterable / iterator of [n, D] tensors.

        `init_centers` [K, D] replaces k-means++ (e.g. to continue from a previous fit)."""
        gen = self._generator()
        stream = self._batches(data, gen)
        init_points, buffered = [], 0
        for chunk in stream:
            init_points.append(chunk)
            buffered += chunk.shape[0]
            if buffered >= self.init_size:
                break
        if not init_points:
            raise ValueError("k-means got no features to fit")
        init = torch.cat(init_points)
        if init.shape[0] < self.num_clusters:
            raise ValueError(f"need at least num_units={self.num_clusters} feature frames to fit, got {init.shape[0]}")
        if init_centers is not None:
            if tuple(init_centers.shape) != (self.num_clusters, init.shape[1]):
                raise ValueError(
                    f"init_centers must be [{self.num_clusters}, {init.shape[1]}], got {tuple(init_centers.shape)}"
                )
            self.cluster_centers = init_centers.to(self.device, torch.float32).clone()
        else:
            self.cluster_centers = kmeans_plus_plus(init, self.num_clusters, gen, self.show_progress)
        self.counts = torch.zeros(self.num_clusters, device=self.device)
        last_seen = torch.zeros(self.num_clusters, dtype=torch.long, device=self.device)

        def steps() -> Iterator[torch.Tensor]:
            yield from init_points  # the init buffer is also training data
            yield from stream

        progress = tqdm(total=self.max_steps, desc="mini-batch k-means", disable=not self.show_progress)
        ema_inertia = None
        for step, batch in enumerate(steps()):
            if step >= self.max_steps:
                break
            inertia = self._step(batch, step, last_seen, gen)
            ema_inertia = inertia if ema_inertia is None else 0.9 * ema_inertia + 0.1 * inertia
            progress.update(1)
            progress.set_postfix(inertia=f"{ema_inertia:.4g}")
        progress.close()
        self.inertia_ = ema_inertia
        return self

    @torch.no_grad()
    def _step(self, batch: torch.Tensor, step: int, last_seen: torch.Tensor, gen: torch.Generator) -> float:
        dist = squared_distances(batch, self.cluster_centers)
        min_dist, labels = dist.min(-1)
        k = self.num_clusters
        batch_counts = torch.bincount(labels, minlength=k).float()
        sums = torch.zeros_like(self.cluster_centers).index_add_(0, labels, batch)
        self.counts += batch_counts
        hit = batch_counts > 0
        # per-centroid learning rate 1/count: c <- c + (sum - n c) / count
        rate = torch.where(hit, 1.0 / self.counts.clamp_min(1), torch.zeros_like(self.counts))
        self.cluster_centers += rate[:, None] * (sums - batch_counts[:, None] * self.cluster_centers)
        last_seen[hit] = step
        dead = (step - last_seen >= self.reassign_after).nonzero().squeeze(1)
        if dead.numel() and batch.shape[0] >= dead.numel():
            # re-seed dead centroids on points far from their centroid (sampled proportionally to distance)
            probs = (min_dist / min_dist.sum()).cpu() if min_dist.sum() > 0 else torch.ones(batch.shape[0])
            picks = torch.multinomial(probs, dead.numel(), replacement=False, generator=gen).to(self.device)
            self.cluster_centers[dead] = batch[picks]
            self.counts[dead] = self.counts[hit].min() if hit.any() else 1.0
            last_seen[dead] = step
        return float(min_dist.mean())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.cluster_centers is None:
            raise RuntimeError("MiniBatchKMeans is not fitted: call fit() first")
        return assign(x.to(self.cluster_centers.device), self.cluster_centers)


# ---------------------------------------------------------------------------------------- a unit tokenizer
@torch.no_grad()
def fit_unit_tokenizer(
    tokenizer,
    features_or_batches: torch.Tensor | Iterable[torch.Tensor],
    batch_size: int = 10000,
    max_steps: int = 300,
    init_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    show_progress: bool = True,
) -> MiniBatchKMeans:
    """Fit a `UnitEncoderModel`'s feature standardisation and k-means centroids (in place).

    Args:
        features_or_batches: frame features [N, D], or an iterable of [n, D] / [B, T, D] tensors (padded frames
            removed by the caller); iterables are concatenated in memory (cap them, e.g. `max_frames` of
            `fit_unit_tokenizer_on_dataset`).
        batch_size, max_steps, init_size, seed: mini-batch k-means settings (see `MiniBatchKMeans`).
        device: where k-means runs; defaults to the tokenizer's device.
    Returns the fitted `MiniBatchKMeans` (its `inertia_` is the final mean squared distance).
    """
    if isinstance(features_or_batches, torch.Tensor):
        features = features_or_batches
    else:
        chunks = [torch.as_tensor(c) for c in features_or_batches]
        if not chunks:
            raise ValueError("fit got no features")
        features = torch.cat([c.reshape(-1, c.shape[-1]) for c in chunks])
    features = features.reshape(-1, features.shape[-1]).float()
    dim, k = tokenizer.config.feature_dim, tokenizer.config.num_units
    if features.shape[-1] != dim:
        raise ValueError(f"features have dim {features.shape[-1]}, but this tokenizer's feature_dim is {dim}")
    if features.shape[0] < k:
        raise ValueError(f"need at least num_units={k} frames to fit, got {features.shape[0]}")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN/inf")
    device = torch.device(device) if device is not None else tokenizer.cluster_centers.device
    features = features.to(device)
    mean = features.mean(0)
    std = features.std(0).clamp_min(1e-5)
    kmeans = MiniBatchKMeans(
        k, batch_size=batch_size, max_steps=max_steps, init_size=init_size, seed=seed, device=device,
        show_progress=show_progress,
    ).fit((features - mean) / std)
    tokenizer.cluster_centers.copy_(kmeans.cluster_centers.to(tokenizer.cluster_centers))
    tokenizer.feature_mean.copy_(mean.to(tokenizer.feature_mean))
    tokenizer.feature_std.copy_(std.to(tokenizer.feature_std))
    tokenizer.is_fitted.fill_(True)
    return kmeans


def _audio_batches(dataset, columns, batch_size, feature_extractor, device):
    """(batch rows, padded inputs on `device`) over a `datasets.Dataset` / `IterableDataset`."""
    for batch in dataset.select_columns(columns).iter(batch_size=batch_size):
        inputs = feature_extractor(batch[columns[0]], return_tensors="pt")
        yield batch, inputs["input_values"].to(device), inputs["attention_mask"].to(device)


def _check_column(dataset, column: str) -> None:
    if dataset.column_names is not None and column not in dataset.column_names:
        raise ValueError(f"dataset has no column {column!r}; columns: {dataset.column_names}")


def _collect_frames(dataset, feature_extractor, extract, device, audio_column, batch_size, max_frames, show_progress,
                    desc) -> torch.Tensor:  # fmt: skip
    """Stream `dataset` through the feature extractor and `extract(values, mask, first_row, rows) -> (features
    [B, T, D], frame mask [B, T])`; the valid frames [N, D] on the CPU, stopping after `max_frames`."""
    _check_column(dataset, audio_column)
    collected, total, row = [], 0, 0
    total_rows = len(dataset) if hasattr(dataset, "__len__") else None
    progress = tqdm(total=total_rows, desc=desc, unit="utt", disable=not show_progress)
    for batch, values, mask in _audio_batches(dataset, [audio_column], batch_size, feature_extractor, device):
        rows = len(batch[audio_column])
        features, frame_mask = extract(values, mask, row, rows)
        frames = features[frame_mask].cpu()
        collected.append(frames)
        total += frames.shape[0]
        row += rows
        progress.update(rows)
        progress.set_postfix(frames=total)
        if max_frames is not None and total >= max_frames:
            break
    progress.close()
    if not collected:
        raise ValueError("the dataset gave no audio")
    features = torch.cat(collected)
    return features[:max_frames] if max_frames is not None else features


@torch.no_grad()
def collect_features(
    tokenizer,
    dataset: Any,
    feature_extractor: Any,
    audio_column: str = "audio",
    batch_size: int = 8,
    max_frames: int | None = 200_000,
    show_progress: bool = True,
    warp_factors: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """Stream a `datasets.Dataset` / `IterableDataset` through the feature extractor and front end; return the
    valid frames [N, D] (on CPU), stopping after `max_frames`.

    `warp_factors` (MFCC front end): one vocal tract length warp for every row, or one per row in dataset order
    (`dataset_warp_factors`); by default a fitted tokenizer with `vtln_warps` searches each utterance's own."""

    def extract(values, mask, row, rows):
        warps = warp_factors
        if warp_factors is not None and not isinstance(warp_factors, (int, float)):
            warps = list(warp_factors[row : row + rows])
            if len(warps) != rows:
                raise ValueError(f"warp_factors has {len(warp_factors)} values but the dataset has more rows")
        return tokenizer.extract_features(values, mask, warp_factors=warps)

    return _collect_frames(dataset, feature_extractor, extract, tokenizer.cluster_centers.device, audio_column,
                           batch_size, max_frames, show_progress, desc="extracting features")  # fmt: skip


@torch.no_grad()
def dataset_warp_factors(
    tokenizer,
    dataset: Any,
    feature_extractor: Any,
    audio_column: str = "audio",
    speaker_column: str | None = None,
    batch_size: int = 8,
    max_frames: int | None = None,
    show_progress: bool = True,
) -> list[float]:
    """The vocal tract length warp of each row (in dataset order, up to the row where `max_frames` frames are
    reached): searched per utterance, or shared by all rows of one `speaker_column` value (the warp that fits
    that speaker's frames together). Needs a fitted tokenizer with `config.vtln_warps`."""
    _check_column(dataset, audio_column)
    columns = [audio_column]
    if speaker_column is not None:
        _check_column(dataset, speaker_column)
        columns.append(speaker_column)
    distortions, counts, speakers, total = [], [], [], 0
    total_rows = len(dataset) if hasattr(dataset, "__len__") else None
    progress = tqdm(total=total_rows, desc="searching warps", unit="utt", disable=not show_progress)
    device = tokenizer.cluster_centers.device
    for batch, values, mask in _audio_batches(dataset, columns, batch_size, feature_extractor, device):
        distortion, frames = tokenizer.warp_distortions(values, mask)
        distortions.append(distortion.cpu())
        counts.append(frames.cpu())
        if speaker_column is not None:
            speakers += list(batch[speaker_column])
        total += int(frames.sum())
        progress.update(len(batch[audio_column]))
        if max_frames is not None and total >= max_frames:
            break
    progress.close()
    if not distortions:
        raise ValueError("the dataset gave no audio")
    groups = speakers if speaker_column is not None else None
    return tokenizer.choose_warp_factors(torch.cat(distortions), torch.cat(counts), groups).tolist()


def fit_unit_tokenizer_on_dataset(
    tokenizer,
    dataset: Any,
    feature_extractor: Any,
    audio_column: str = "audio",
    batch_size: int = 8,
    max_frames: int | None = 200_000,
    shuffle: bool = True,
    seed: int = 0,
    show_progress: bool = True,
    vtln_iterations: int | None = None,
    speaker_column: str | None = None,
    **kmeans_kwargs,
) -> MiniBatchKMeans:
    """Extract features of (a shuffled prefix of) `dataset` up to `max_frames` frames and `fit` on them.

    With `config.vtln_warps`, the first fit clusters unwarped features; then each of `vtln_iterations` (default 2)
    searches every utterance's warp against those centroids (or one warp per `speaker_column` value) and refits on
    the warped features, so the centroids describe one normalised vocal tract (whether it then tokenises with a
    search or unwarped is `config.vtln_tokenization`). `kmeans_kwargs` go to
    `fit_unit_tokenizer` (`batch_size` there is named `kmeans_batch_size` here).
    """
    warping = tokenizer.config.vtln_warps is not None
    iterations = (2 if warping else 0) if vtln_iterations is None else vtln_iterations
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"vtln_iterations must be an int >= 0, got {vtln_iterations!r}")
    if (iterations or speaker_column is not None) and not warping:
        raise ValueError("vtln_iterations / speaker_column search vocal tract warps: the tokenizer needs "
                         "UnitEncoderConfig(vtln_warps=...)")  # fmt: skip
    if shuffle and hasattr(dataset, "shuffle"):
        dataset = dataset.shuffle(seed=seed)
    was_training = tokenizer.training
    tokenizer.eval()
    if "kmeans_batch_size" in kmeans_kwargs:
        kmeans_kwargs["batch_size"] = kmeans_kwargs.pop("kmeans_batch_size")
    collect = dict(audio_column=audio_column, batch_size=batch_size, max_frames=max_frames, show_progress=show_progress)
    features = collect_features(tokenizer, dataset, feature_extractor, warp_factors=1.0 if warping else None, **collect)
    kmeans = fit_unit_tokenizer(tokenizer, features, seed=seed, show_progress=show_progress, **kmeans_kwargs)
    for _ in range(iterations):  # searched here whatever `config.vtln_tokenization` makes the tokenizer do later
        warps = dataset_warp_factors(tokenizer, dataset, feature_extractor, speaker_column=speaker_column, **collect)
        features = collect_features(tokenizer, dataset, feature_extractor, warp_factors=warps, **collect)
        kmeans = fit_unit_tokenizer(tokenizer, features, seed=seed, show_progress=show_progress, **kmeans_kwargs)
    tokenizer.train(was_training)
    return kmeans


# ---------------------------------------------------------------------------------------- a log-mel RVQ codec
@torch.no_grad()
def fit_mel_rvq_codec(codec, frames: torch.Tensor, seed: int = 0, max_steps: int = 150, batch_size: int = 4096,
                      show_progress: bool = True) -> list[float]:  # fmt: skip
    """Fit a `MelRVQCodecModel`'s codebooks on log-mel frames [N, num_mel_bins] (`codec.log_mel`), level by level:
    level q clusters what levels 1..q-1 left (residual k-means, as SoundStream / EnCodec initialise their RVQ).
    Returns the RMS residual after each level (the log-mel error of decoding that many levels)."""
    config = codec.config
    if frames.dim() != 2 or frames.shape[1] != config.num_mel_bins:
        raise ValueError(f"frames must be [N, {config.num_mel_bins}] log-mel frames, got {tuple(frames.shape)}")
    if frames.shape[0] < config.codebook_size:
        raise ValueError(f"need at least codebook_size={config.codebook_size} frames to fit, got {frames.shape[0]}")
    residual = frames.float().to(codec.codebooks.device)
    errors = []
    for level in tqdm(range(config.num_codebooks), desc="residual k-means", disable=not show_progress):
        kmeans = MiniBatchKMeans(config.codebook_size, batch_size=batch_size, max_steps=max_steps, seed=seed + level,
                                 device=residual.device, show_progress=False).fit(residual)  # fmt: skip
        codec.codebooks[level] = kmeans.cluster_centers.to(codec.codebooks)
        residual = residual - kmeans.cluster_centers[kmeans.predict(residual)]
        errors.append(float(residual.pow(2).mean().sqrt()))
    return errors


@torch.no_grad()
def fit_mel_rvq_codec_on_dataset(
    codec,
    dataset: Any,
    feature_extractor: Any,
    audio_column: str = "audio",
    batch_size: int = 8,
    max_frames: int | None = 500_000,
    shuffle: bool = True,
    seed: int = 0,
    show_progress: bool = True,
    **kmeans_kwargs,
) -> list[float]:
    """Log-mel frames of (a shuffled prefix of) `dataset` up to `max_frames`, then `fit_mel_rvq_codec` on them.
    `feature_extractor` must give raw samples at the codec's rate (`do_normalize=False`)."""
    if shuffle and hasattr(dataset, "shuffle"):
        dataset = dataset.shuffle(seed=seed)
    frames = _collect_frames(dataset, feature_extractor, lambda values, mask, row, rows: codec.log_mel(values, mask),
                             codec.codebooks.device, audio_column, batch_size, max_frames, show_progress,
                             desc="log-mel frames")  # fmt: skip
    return fit_mel_rvq_codec(codec, frames, seed=seed, show_progress=show_progress, **kmeans_kwargs)


__all__ = [
    "MiniBatchKMeans",
    "collect_features",
    "dataset_warp_factors",
    "fit_mel_rvq_codec",
    "fit_mel_rvq_codec_on_dataset",
    "fit_unit_tokenizer",
    "fit_unit_tokenizer_on_dataset",
    "kmeans_plus_plus",
]
