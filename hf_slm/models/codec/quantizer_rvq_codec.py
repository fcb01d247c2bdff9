"""Residual vector quantization with EMA codebooks (VQ-VAE-2 / SoundStream / EnCodec).

The codebooks are buffers updated by exponential moving averages of the vectors assigned to them, not by gradients;
the encoder learns through the straight-through estimator and the commitment loss. Codes whose EMA usage falls
below a threshold are restarted from random vectors of the current batch (dead-code restart), and each codebook can
start from k-means on the first training batch. Padded frames never touch the statistics.
"""

from __future__ import annotations

import torch
from torch import nn


def sample_vectors(vectors: torch.Tensor, num: int) -> torch.Tensor:
    """`num` rows of `vectors` [N, D] drawn at random (without replacement when there are enough)."""
    count = vectors.shape[0]
    if count >= num:
        index = torch.randperm(count, device=vectors.device)[:num]
    else:
        index = torch.randint(0, count, (num,), device=vectors.device)
    return vectors[index]


class EMACodebook(nn.Module):
    """One codebook of `size` vectors of `dim`: nearest-neighbour assignment and its EMA training rule.

    Buffers: `embed` [size, dim] (the codes), `embed_avg` [size, dim] (EMA of the sum of assigned vectors),
    `cluster_size` [size] (EMA of assignment counts) and `initialized` (0 until k-means initialisation ran).
    The code is `embed_avg / smoothed(cluster_size)`, so a code moves toward the mean of what it is assigned.
    """

    def __init__(self, dim, size, decay=0.99, epsilon=1e-5, dead_code_threshold=2.0, kmeans_init=True, kmeans_iters=10):
        super().__init__()
        self.dim = dim
        self.size = size
        self.decay = decay
        self.epsilon = epsilon
        self.dead_code_threshold = dead_code_threshold
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        embed = nn.init.kaiming_uniform_(torch.empty(size, dim))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("initialized", torch.tensor(0.0 if kmeans_init else 1.0))
        #: codes restarted by the last training step (for logging and tests)
        self.last_restarts = 0

    def assign(self, vectors: torch.Tensor) -> torch.LongTensor:
        """Index of the nearest code (Euclidean) of each row of `vectors` [N, dim]."""
        embed = self.embed.to(vectors.dtype)
        distance = vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ embed.t() + embed.pow(2).sum(1)[None]
        return distance.argmin(1)

    def lookup(self, codes: torch.LongTensor) -> torch.Tensor:
        return nn.functional.embedding(codes, self.embed)

    @torch.no_grad()
    def kmeans_init_(self, vectors: torch.Tensor) -> None:
        """Lloyd's k-means on `vectors` [N, dim], seeded with random rows; sets codes, averages and counts."""
        centroids = sample_vectors(vectors, self.size)
        counts = torch.zeros(self.size, device=vectors.device)
        for _ in range(max(1, self.kmeans_iters)):
            index = self.assign_to(vectors, centroids)
            counts = torch.bincount(index, minlength=self.size).to(vectors.dtype)
            sums = torch.zeros_like(centroids).index_add_(0, index, vectors)
            centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        self.embed.copy_(centroids)
        self.embed_avg.copy_(centroids * counts[:, None])
        self.cluster_size.copy_(counts)
        self.initialized.fill_(1.0)

    @staticmethod
    def assign_to(vectors, centroids):
        distance = vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ centroids.t() + centroids.pow(2).sum(1)[None]
        return distance.argmin(1)

    @torch.no_grad()
    def ema_update_(self, vectors: torch.Tensor, codes: torch.LongTensor) -> None:
        """Move counts and sums toward this batch's assignment; codes become Laplace-smoothed cluster means."""
        counts = torch.bincount(codes, minlength=self.size).to(self.cluster_size.dtype)
        sums = torch.zeros_like(self.embed_avg).index_add_(0, codes, vectors.to(self.embed_avg.dtype))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.size * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def restart_dead_codes_(self, vectors: torch.Tensor) -> int:
        """Replace codes used less than `dead_code_threshold` (EMA count) by random batch vectors.

        The replaced code's average and count are reset to `vector * threshold` and `threshold`, so the next EMA
        update keeps it where it was put (EnCodec resets only the code, which its own EMA update then overwrites).
        """
        if self.dead_code_threshold <= 0:
            return 0
        dead = self.cluster_size < self.dead_code_threshold
        num_dead = int(dead.sum())
        if num_dead:
            fresh = sample_vectors(vectors.to(self.embed.dtype), num_dead)
            self.embed[dead] = fresh
            self.embed_avg[dead] = fresh * self.dead_code_threshold
            self.cluster_size[dead] = self.dead_code_threshold
        return num_dead

    def forward(self, vectors: torch.Tensor, valid: torch.BoolTensor | None = None):
        """Codes of `vectors` [N, dim]; in training mode also run the EMA rule on the `valid` rows.

        The assignment uses the codebook as it was before this batch's update.
        """
        if self.training and valid is not None and not bool(self.initialized) and valid.any():
            self.kmeans_init_(vectors.detach().float()[valid])
        codes = self.assign(vectors.detach())
        quantized = self.lookup(codes).to(vectors.dtype)
        if self.training and valid is not None and valid.any():
            batch = vectors.detach().float()[valid]
            self.ema_update_(batch, codes[valid])
            self.last_restarts = self.restart_dead_codes_(batch)
        return quantized, codes


class ResidualVectorQuantizer(nn.Module):
    """`num_codebooks` EMA codebooks applied in turn, each to what the previous ones left (Zeghidour et al., 2021).

    `forward(latents [B, D, T], mask [B, T], num_levels)` returns the straight-through quantized latents (value: the
    sum of the chosen codes; gradient: identity to `latents`), codes [B, Q, T], the commitment loss (mean over levels
    of the squared distance between each level's input and its code, over valid frames; every level's residual is
    taken from detached codes, so each level's commitment term reaches the encoder) and the straight-through output
    of level 1 alone (what semantic distillation supervises).
    """

    def __init__(self, config):
        super().__init__()
        self.num_codebooks = config.num_codebooks
        self.quantizer_dropout = config.quantizer_dropout
        self.codebooks = nn.ModuleList(
            EMACodebook(
                config.hidden_size,
                config.codebook_size,
                decay=config.ema_decay,
                epsilon=config.ema_epsilon,
                dead_code_threshold=config.dead_code_threshold,
                kmeans_init=config.kmeans_init,
                kmeans_iters=config.kmeans_iters,
            )
            for _ in range(config.num_codebooks)
        )

    def _num_levels(self, num_levels):
        if num_levels is None:
            num_levels = self.num_codebooks
            if self.training and self.quantizer_dropout > 0 and float(torch.rand(())) < self.quantizer_dropout:
                num_levels = int(torch.randint(1, self.num_codebooks + 1, ()))
        if not isinstance(num_levels, int) or not 1 <= num_levels <= self.num_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.num_codebooks}], got {num_levels!r}")
        return num_levels

    def forward(self, latents: torch.Tensor, mask: torch.BoolTensor, num_levels: int | None = None):
        num_levels = self._num_levels(num_levels)
        batch, dim, frames = latents.shape
        flat = latents.transpose(1, 2).reshape(batch * frames, dim)
        valid = mask.reshape(-1)
        residual = flat
        total = torch.zeros_like(flat)
        codes, commitment, first = [], [], None
        for codebook in self.codebooks[:num_levels]:
            quantized, level_codes = codebook(residual, valid)
            quantized = quantized.detach()
            if valid.any():
                commitment.append(((residual - quantized)[valid] ** 2).mean())
            if first is None:
                first = residual + (quantized - residual).detach()
            residual = residual - quantized
            total = total + quantized
            codes.append(level_codes.view(batch, frames))
        straight_through = flat + (total - flat).detach()
        keep = mask[:, None].to(latents.dtype)

        def unflatten(x):
            return x.view(batch, frames, dim).transpose(1, 2) * keep

        loss = torch.stack(commitment).mean() if commitment else latents.new_zeros(())
        return unflatten(straight_through), torch.stack(codes, 1), loss, unflatten(first)

    def decode(self, codes: torch.LongTensor) -> torch.Tensor:
        """Codes [B, q, T] (q <= num_codebooks) -> summed code vectors [B, D, T]."""
        total = 0
        for level, codebook in enumerate(self.codebooks[: codes.shape[1]]):
            total = total + codebook.lookup(codes[:, level])
        return total.transpose(1, 2)


__all__ = ["EMACodebook", "ResidualVectorQuantizer", "sample_vectors"]
