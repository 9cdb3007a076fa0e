"""Networks of the SAC learner: LayerNorm MLPs, the tanh-Gaussian actor head, critic ensembles.

The critic ensemble keeps its N members' weights stacked in (N, in, out) tensors and runs them
with one batched matmul per layer: N=10 costs little more than N=2 on a CPU, where a Python loop
over N separate MLPs would pay the per-op overhead N times. A subset of members can be run alone
(the REDQ target needs only its M of the N target critics).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(
    in_dim: int, hidden: tuple[int, ...], out_dim: int | None, layer_norm: bool
) -> nn.Sequential:
    """Linear -> (LayerNorm) -> ReLU per hidden layer, then an optional linear output layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU(inplace=True))
        in_dim = width
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class TanhGaussianHead(nn.Module):
    """pi(a|s) = tanh(N(mu(s), sigma(s))), with the log-probability corrected for the squashing."""

    def __init__(self, in_dim: int, action_dim: int, hidden: tuple[int, ...], layer_norm: bool):
        super().__init__()
        self.trunk = mlp(in_dim, hidden, None, layer_norm)
        width = hidden[-1] if hidden else in_dim
        self.mean = nn.Linear(width, action_dim)
        self.log_std = nn.Linear(width, action_dim)

    def forward(
        self, x: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(action in (-1, 1), log pi(action|x)); deterministic gives tanh(mu) and log-prob 0."""
        h = self.trunk(x)
        mu = self.mean(h).float()  # the squashing math in float32 also under bf16 autocast
        if deterministic:
            return torch.tanh(mu), torch.zeros(mu.shape[0], device=mu.device)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (
            torch.tanh(self.log_std(h).float()) + 1.0
        )
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        a = torch.tanh(u)
        # log N(u; mu, std) - sum log(1 - tanh(u)^2), the latter written stably as
        # 2 (log 2 - u - softplus(-2u))
        log_prob = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return a, log_prob


class EnsembleLinear(nn.Module):
    """N independent linear layers applied to an (N, B, in) batch with one batched matmul."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a separate scale and shift per ensemble member."""

    def __init__(self, n: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = (
            (self.weight, self.bias)
            if members is None
            else (self.weight[members], self.bias[members])
        )
        return torch.addcmul(bias, F.layer_norm(x, x.shape[-1:]), weight)


class CriticEnsemble(nn.Module):
    """N Q-functions Q_i(x, a) -> (N, B); x is the (already encoded) observation feature."""

    def __init__(
        self, n: int, in_dim: int, hidden: tuple[int, ...], layer_norm: bool, out_dim: int = 1
    ):
        super().__init__()
        self.n = n
        layers: list[nn.Module] = []
        for width in hidden:
            layers.append(EnsembleLinear(n, in_dim, width))
            if layer_norm:
                layers.append(EnsembleLayerNorm(n, width))
            layers.append(nn.ReLU(inplace=True))
            in_dim = width
        layers.append(EnsembleLinear(n, in_dim, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, in) shared by all members or (N, B, in) one per member; returns (N, B, out).

        members: indices of the members to run (default all); the output then has len(members) rows.
        """
        n = self.n if members is None else len(members)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(n, -1, -1)
        for layer in self.net:
            x = (
                layer(x, members)
                if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm))
                else layer(x)
            )
        return x.float()  # Q-values in float32 also under bf16 autocast
