"""Nearest-centroid assignment of k-means units (inference); fitting the centroids is `hf_slm.training.kmeans`."""

from __future__ import annotations

import torch

def squared_distances(x: torch.Tensor, centers: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[N, D] x [K, D] -> [N, K] squared Euclidean distances (clamped at 0 against rounding), computed in `dtype`."""
    x = x.to(dtype)
    centers = centers.to(dtype)
    return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ centers.T + centers.pow(2).sum(-1)).clamp_min_(0)


def assign(x: torch.Tensor, centers: torch.Tensor, chunk_size: int = 65536) -> torch.Tensor:
    """Index of the nearest centroid for each row of `x` [N, D], in chunks to bound memory."""
    if x.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    return torch.cat([squared_distances(c, centers).argmin(-1) for c in x.split(chunk_size)])


__all__ = ["assign", "squared_distances"]
