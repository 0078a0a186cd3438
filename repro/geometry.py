"""Vector-set geometry used during extraction (torch, batched over layers)."""
from __future__ import annotations

import torch


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """[..., k, d] -> [..., k, k] cosine similarities (float64 for stable 4th-decimal sweeps)."""
    x = x.double()
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return x @ x.transpose(-1, -2)


def mean_offdiag(m: torch.Tensor) -> torch.Tensor:
    """Mean of the off-diagonal entries of [..., k, k] (the mean pairwise cosine)."""
    k = m.shape[-1]
    mask = ~torch.eye(k, dtype=torch.bool, device=m.device)
    return m[..., mask].mean(-1)


def upper(m: torch.Tensor) -> torch.Tensor:
    k = m.shape[-1]
    iu = torch.triu_indices(k, k, offset=1)
    return m[..., iu[0], iu[1]]


def rdm_std(m: torch.Tensor) -> torch.Tensor:
    """Std of the off-diagonal upper triangle (population std, numpy's default)."""
    return upper(m).std(-1, unbiased=False)


def center(means: torch.Tensor) -> torch.Tensor:
    """Subtract the global mean of the k per-emotion means, per layer: [L, k, d]."""
    return means - means.mean(dim=-2, keepdim=True)


def finite_layers(x: torch.Tensor) -> torch.Tensor:
    """[L, ...] -> bool [L]: True where every value of the layer is finite."""
    return torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
