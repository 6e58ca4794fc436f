"""Samplers over the DDPM schedule CascadeV was trained with, in k-diffusion style.

The state is the "variance exploding" latent of diffusers' Euler schedulers: ``x = x_ddpm * sqrt(1 + sigma^2)``,
``sigma_t = sqrt((1 - alphabar_t) / alphabar_t)``. Each sampler is a short function over

* ``eps_fn(model_input, timestep) -> eps``: ``model_input = x / sqrt(sigma^2 + 1)`` (the DDPM-scale input the DiT
  was trained on) and ``timestep`` a 0-dim float32 tensor on the raw 0..999 scale;
* ``x``: the initial latent, already multiplied by :attr:`Schedule.init_noise_sigma`;
* a :class:`Schedule` (``sigmas [steps + 1]`` ending in 0, ``timesteps [steps]``);
* ``callback(info)`` called after every step with ``i, timestep, sigma, sigma_next, x, eps, denoised``.

Every sampler makes exactly ONE ``eps_fn`` call per step.

Schedule (the official one, diffusers ``EulerAncestralDiscreteScheduler()`` defaults): linear betas 1e-4..0.02
over 1000 steps (float32), ``timesteps = linspace(0, 999, steps)[::-1]`` (float32), ``sigmas`` = the training
sigmas linearly interpolated at those (fractional) timesteps in float64, then float32, plus a final 0.
``init_noise_sigma = sigma_max`` (linspace spacing: no ``sqrt(sigma^2 + 1)``).

Sigma <-> timestep mapping: the timestep passed to the model for ``sigmas[i]`` is ``timesteps[i]``. For custom sigma
lists :func:`sigma_to_timestep` inverts diffusers' piecewise-linear ``t -> sigma`` map exactly (linear
interpolation of the timestep over the monotonic training-sigma table), so ``sigma_to_timestep(sigmas[i]) ==
timesteps[i]`` up to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseFn = Callable[[int, torch.Tensor], torch.Tensor]
StepCallback = Callable[[dict], None]

SAMPLERS = ("euler_a", "ddim", "dpmpp_2m")


def train_sigmas(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """``[num_train_timesteps]`` float32 ``sqrt((1 - alphabar) / alphabar)`` for linear betas (diffusers numerics)."""
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


@dataclass(frozen=True)
class Schedule:
    """A sampling schedule: ``sigmas [steps + 1]`` (float32, last 0) and model ``timesteps [steps]`` (float32)."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor

    def __post_init__(self):
        if self.sigmas.ndim != 1 or self.timesteps.ndim != 1 or len(self.sigmas) != len(self.timesteps) + 1:
            raise ValueError(
                f"schedule: expected sigmas [steps+1] and timesteps [steps], got "
                f"{tuple(self.sigmas.shape)} and {tuple(self.timesteps.shape)}"
            )

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    @property
    def init_noise_sigma(self) -> torch.Tensor:
        """0-dim float32: the factor for the initial unit-variance noise (``sigma_max``, linspace spacing)."""
        return self.sigmas.max()


def official_schedule(steps: int, num_train_timesteps: int = 1000) -> Schedule:
    """The diffusers ``EulerAncestralDiscreteScheduler().set_timesteps(steps)`` schedule (also used by DDIM and
    DPM++ 2M here). ``steps=8`` gives timesteps 999, 856.29, ..., 0 and sigmas 157.41, ..., 0.0100013, 0."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    ts = np.linspace(0, num_train_timesteps - 1, steps, dtype=np.float32)[::-1].copy()
    table = train_sigmas(num_train_timesteps).numpy()
    sig = np.interp(ts, np.arange(0, len(table)), table)
    sig = np.concatenate([sig, [0.0]]).astype(np.float32)
    return Schedule(torch.from_numpy(sig), torch.from_numpy(ts))


def sigma_to_timestep(sigma: torch.Tensor | float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Inverse of the schedule's ``timestep -> sigma`` interpolation (float32 tensor, same shape as ``sigma``)."""
    table = train_sigmas(num_train_timesteps).numpy().astype(np.float64)
    s = np.asarray(torch.as_tensor(sigma, dtype=torch.float64).cpu().numpy())
    t = np.interp(s, table, np.arange(len(table), dtype=np.float64))
    return torch.from_numpy(np.asarray(t, dtype=np.float32))


def timestep_to_sigma(timestep: torch.Tensor | float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """``timestep -> sigma`` as the schedule computes it (linear interpolation of the training sigmas)."""
    table = train_sigmas(num_train_timesteps).numpy()
    t = np.asarray(torch.as_tensor(timestep, dtype=torch.float64).cpu().numpy())
    return torch.from_numpy(np.asarray(np.interp(t, np.arange(len(table)), table), dtype=np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Noise sources for the ancestral sampler
# ---------------------------------------------------------------------------------------------------------------


def generator_noise(generator: torch.Generator | None = None) -> NoiseFn:
    """Noise drawn from ``generator`` (on the generator's device, then moved), float32, shaped like ``x``."""

    def noise(i: int, like: torch.Tensor) -> torch.Tensor:
        dev = generator.device if generator is not None else like.device
        return torch.randn(like.shape, generator=generator, device=dev, dtype=torch.float32).to(like.device)

    return noise


def replay_noise(noises: Sequence[torch.Tensor]) -> NoiseFn:
    """Replays recorded noises in order (``noises[i]`` for step ``i``); shapes must match the latent."""

    def noise(i: int, like: torch.Tensor) -> torch.Tensor:
        if i >= len(noises):
            raise ValueError(f"step_noises: step {i} needs a noise, only {len(noises)} were given")
        n = noises[i]
        if tuple(n.shape) != tuple(like.shape):
            raise ValueError(f"step_noises[{i}]: expected shape {tuple(like.shape)}, got {tuple(n.shape)}")
        return n.to(device=like.device, dtype=torch.float32)

    return noise


# ---------------------------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------------------------


def _eps(eps_fn: EpsFn, x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    model_input = x / ((sigma**2 + 1) ** 0.5)  # diffusers scale_model_input, float32
    return eps_fn(model_input, t).to(torch.float32)


def _report(callback, **info):
    if callback is not None:
        callback(info)


@torch.no_grad()
def sample_euler_ancestral(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: Schedule,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Euler ancestral (diffusers ``EulerAncestralDiscreteScheduler.step`` numerics, eta 1).

    ``x [...]`` float32 latent times ``init_noise_sigma``; returns the final latent (same shape). A noise is drawn
    at every step, also the last one where ``sigma_up = 0`` (so generator-driven runs consume the official number
    of draws and recorded ``step_noise.i`` replay one for one).
    """
    noise = noise or generator_noise(None)
    sigmas = schedule.sigmas.to(x.device)
    x = x.to(torch.float32)
    for i in range(schedule.steps):
        sigma, sigma_to = sigmas[i], sigmas[i + 1]
        t = schedule.timesteps[i].to(x.device)
        eps = _eps(eps_fn, x, sigma, t)
        denoised = x - sigma * eps
        sigma_up = (sigma_to**2 * (sigma**2 - sigma_to**2) / sigma**2) ** 0.5
        sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
        x = x + (x - denoised) / sigma * (sigma_down - sigma)
        x = x + noise(i, x) * sigma_up
        _report(callback, i=i, timestep=t, sigma=sigma, sigma_next=sigma_to, x=x, eps=eps, denoised=denoised)
    return x


@torch.no_grad()
def sample_ddim(
    eps_fn: EpsFn, x: torch.Tensor, schedule: Schedule, callback: StepCallback | None = None, **_
) -> torch.Tensor:
    """DDIM with eta = 0: ``x_next = denoised + sigma_next * eps``.

    In the sigma parametrisation this is exactly DDIM's ``sqrt(ab') x0 + sqrt(1 - ab') eps`` divided by
    ``sqrt(ab')`` (and equals a deterministic Euler step). The last step (sigma 0) returns ``denoised``.
    """
    sigmas = schedule.sigmas.to(x.device)
    x = x.to(torch.float32)
    for i in range(schedule.steps):
        sigma, sigma_to = sigmas[i], sigmas[i + 1]
        t = schedule.timesteps[i].to(x.device)
        eps = _eps(eps_fn, x, sigma, t)
        denoised = x - sigma * eps
        x = denoised + sigma_to * eps
        _report(callback, i=i, timestep=t, sigma=sigma, sigma_next=sigma_to, x=x, eps=eps, denoised=denoised)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    eps_fn: EpsFn, x: torch.Tensor, schedule: Schedule, callback: StepCallback | None = None, **_
) -> torch.Tensor:
    """DPM-Solver++(2M) (multistep, second order, data prediction) with ``lambda = -log(sigma)``.

    First step and the step to sigma 0 are first order (the latter returns ``denoised``). Coefficients are
    computed in float64 from the float32 sigmas and applied to float32 tensors.
    """
    sig = [float(s) for s in schedule.sigmas]
    x = x.to(torch.float32)
    old_denoised = None
    for i in range(schedule.steps):
        sigma, sigma_to = sig[i], sig[i + 1]
        sigma_t = schedule.sigmas[i].to(x.device)
        t = schedule.timesteps[i].to(x.device)
        eps = _eps(eps_fn, x, sigma_t, t)
        denoised = x - sigma_t * eps
        if sigma_to == 0.0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_to)
            coef = -math.expm1(-h)
            if old_denoised is None:
                d = denoised
            else:
                r = (math.log(sig[i - 1]) - math.log(sigma)) / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_to / sigma) * x + coef * d
        old_denoised = denoised
        _report(
            callback, i=i, timestep=t, sigma=sigma_t, sigma_next=schedule.sigmas[i + 1], x=x, eps=eps, denoised=denoised
        )
    return x


def sample(
    name: str,
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: Schedule,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Dispatch to ``euler_a`` | ``ddim`` | ``dpmpp_2m`` (``noise`` is only used by ``euler_a``)."""
    if name == "euler_a":
        return sample_euler_ancestral(eps_fn, x, schedule, noise=noise, callback=callback)
    if name == "ddim":
        return sample_ddim(eps_fn, x, schedule, callback=callback)
    if name == "dpmpp_2m":
        return sample_dpmpp_2m(eps_fn, x, schedule, callback=callback)
    raise ValueError(f"sampler: expected one of {SAMPLERS}, got {name!r}")
