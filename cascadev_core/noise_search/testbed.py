"""A known-answer stand-in for an image-to-video model, for tests and ``bench/bench_kstep_search.py``.

Given a guide image ``g``, :class:`GaussianMixtureVideo` draws chunks ``[T, C, H, W]`` from a mixture of K
isotropic Gaussians (per-pixel std ``data_std``). The mean of component j is a template video: frame t is
the guide, moved right by ``round(motion * t / (T-1))`` pixels and blended toward a tint colour ``c_j`` by
``drift_j * t / (T-1)``. Frame 0 is the guide itself (as in image-to-video models); a small drift is a
"good" chunk, a large one a "bad" one whose colour shift the next chunk inherits.

Its denoiser is exact (the posterior mean of the mixture) and its sampler is DDIM with eta = 0, i.e. Euler
steps of the probability-flow ODE over a Karras schedule, in the sigma form of k-diffusion. The chunk is
therefore a deterministic function of the initial noise, and with enough steps an exact draw from the
mixture: which component a noise leads to is the known answer a k-step preview tries to predict.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def karras_sigmas(num_steps: int, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> list[float]:
    """The Karras et al. (2022) noise levels of a ``num_steps``-step schedule, then 0: a list of
    ``num_steps + 1`` floats."""
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [*((hi + ramp * (lo - hi)) ** rho).tolist(), 0.0]


def make_guide(height: int = 24, width: int = 24, seed: int = 0) -> torch.Tensor:
    """A synthetic RGB guide image ``[3, H, W]`` in 0..1: colour gradients and three soft discs."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * (xx - yy)])
    for _ in range(3):
        cy, cx, radius = torch.rand(3, generator=gen).tolist()
        colour = torch.rand(3, 1, 1, generator=gen)
        dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
        mask = torch.sigmoid((0.1 + 0.2 * radius - dist) * 40)
        image = image * (1 - mask) + colour * mask
    return image.clamp(0, 1)


class GaussianMixtureVideo:
    """Image-to-video stand-in with an exact denoiser; see the module docstring.

    Args:
        num_frames: T, frames per chunk.
        num_components: K mixture components (equal weights).
        data_std: per-pixel standard deviation of each component.
        max_drift: drifts are evenly spaced in ``[0, max_drift]``; component 0 does not drift.
        motion: pixels the content moves right over one chunk.
        sigma_min, sigma_max, rho: the Karras schedule of :meth:`sample`.
        seed: fixes the tint colours.

    Attributes:
        calls: denoiser calls so far (batched model calls).
        evaluations: denoiser evaluations so far, counted per candidate (a call on B candidates counts B).
    """

    def __init__(
        self,
        num_frames: int = 8,
        num_components: int = 6,
        data_std: float = 0.03,
        max_drift: float = 0.8,
        motion: int = 2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        seed: int = 0,
    ) -> None:
        self.num_frames = num_frames
        self.drift = torch.linspace(0, max_drift, num_components)
        self.data_std = data_std
        self.motion = motion
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho
        self.seed = seed
        self.calls = 0
        self.evaluations = 0

    def noise_shape(self, guide: torch.Tensor) -> tuple[int, int, int, int]:
        """``(T, C, H, W)`` of one candidate's noise for a guide ``[.., C, H, W]``."""
        return (self.num_frames, *guide.shape[-3:])

    def templates(self, guide: torch.Tensor) -> torch.Tensor:
        """Component means ``[K, T, C, H, W]`` for a guide ``[1, C, H, W]``."""
        image = guide.reshape(guide.shape[-3:]).float()
        t = self.num_frames
        progress = torch.linspace(0, 1, t)
        moved = torch.stack([torch.roll(image, round(self.motion * float(p)), dims=-1) for p in progress])
        tint = torch.rand(len(self.drift), image.shape[0], generator=torch.Generator().manual_seed(self.seed))
        amount = (self.drift[:, None] * progress[None]).view(-1, t, 1, 1, 1)
        return moved[None] * (1 - amount) + tint.view(-1, 1, image.shape[0], 1, 1) * amount

    def denoise(self, x: torch.Tensor, sigma: float, guide: torch.Tensor) -> torch.Tensor:
        """Exact ``E[x0 | x0 + sigma * n = x]`` for noisy chunks ``x [B, T, C, H, W]``; counts one call."""
        self.calls += 1
        self.evaluations += x.shape[0]
        mu = self.templates(guide).flatten(1)  # [K, D]
        flat = x.float().flatten(1)  # [B, D]
        var = self.data_std**2 + sigma**2
        dist2 = ((flat[:, None] - mu[None]) ** 2).sum(-1)  # [B, K], row by row: batch-invariant
        posterior = torch.softmax(-dist2 / (2 * var), dim=-1)
        mean = (posterior[:, :, None] * mu[None]).sum(1)  # [B, D]
        shrink = self.data_std**2 / var
        return (shrink * flat + (1 - shrink) * mean).view_as(x)

    def sample(
        self, noise: torch.Tensor, guide: torch.Tensor, num_steps: int, on_eval: Callable[[], None]
    ) -> torch.Tensor:
        """DDIM (eta = 0) over ``num_steps`` Karras steps: noise ``[B, T, C, H, W]`` -> frames in 0..1.

        Follows the ``sample`` contract of :func:`~cascadev_core.noise_search.sample_chunks`: ``on_eval()``
        before each of the ``num_steps`` denoiser calls.
        """
        sigmas = karras_sigmas(num_steps, self.sigma_min, self.sigma_max, self.rho)
        x = noise.float() * sigmas[0]
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
            on_eval()
            denoised = self.denoise(x, sigma, guide)
            x = denoised + (x - denoised) * (sigma_next / sigma)
        return x.clamp(0, 1).to(noise.dtype)

    def nearest_component(self, frames: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Index ``[B]`` of the template nearest to each chunk ``frames [B, T, C, H, W]`` (known answer)."""
        mu = self.templates(guide).flatten(1)
        return ((frames.float().flatten(1)[:, None] - mu[None]) ** 2).sum(-1).argmin(dim=1)
