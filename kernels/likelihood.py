"""Binned Poisson profile-likelihood fit of a signal strength with Gaussian-constrained nuisances.

The hot loop of pseudo-experiment (PE) studies: ``make_profile_fit(expected_fn, center, sigma)``
builds a jitted ``fit(counts) -> FitResult`` for one histogram; ``jax.vmap(fit)`` runs thousands
of PEs at once and the caller shards the batch axis over devices. Every loop has a fixed length,
so ``fit`` has no Python control flow on traced values and compiles once per counts shape.

Method, in internal coordinates ``theta = (mu, z)`` with nuisances ``alpha = center + sigma * z``
(so each constraint is ``z**2 / 2`` and all nuisance directions are on the same scale):

1. Global minimum: a fixed number of Levenberg-Marquardt-damped Newton steps with the exact
   Hessian and a parallel line search (four step lengths at once; from the constraint centre the
   large-count bins are many sigma off and the plain Newton step overshoots), started at ``z = 0``
   and ``mu`` from a Fisher-weighted moment estimate.
2. Interval edges (both sides at once, vmapped): Newton iterations on ``r(mu) = 1`` with
   ``r = sqrt(2 q)`` and ``q(mu) = min_z NLL(mu, z) - NLL_min``; ``r`` is linear in ``mu`` for a
   Gaussian likelihood and nearly so for Poisson ones, so this converges in a few steps even for
   asymmetric intervals. One Hessian per iteration: while ``z`` is profiled to within its local
   quadratic model, the step is a joint Newton step (``mu`` by the root step, ``z`` to the model's
   minimum at the new ``mu``, Venzon-Moolgavkar style), with ``q`` and ``dq/dmu`` from that model
   (envelope theorem plus the first-order correction for a not exactly profiled ``z``); otherwise
   it is a damped Newton step in ``z`` at fixed ``mu`` (needed near a zero expected yield at low
   counts). This is cheaper than an inner minimisation loop per root step and as accurate. A
   bracket ``[inside, outside]`` guards the root steps (bisection, or doubling while no outside
   point is known), and a point with a non-positive expected yield halves the way back to the
   last valid one. The start is ``mu_hat -/+ sigma_hessian`` with ``z`` predicted from the fit
   covariance.

The NLL is taken relative to the saturated model, ``sum(lam - n + n log(n / lam))``, evaluated
through ``n * (r - log1p(r))`` with ``r = (lam - n) / n`` and a series where ``r`` is small: the
result is O(1) per bin even at ~1e6 counts per bin, so float32 keeps its precision. Computations
use JAX's default float dtype (float64 when ``jax_enable_x64`` is set).
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class FitResult(NamedTuple):
    """Outcome of one profile-likelihood fit (all scalars except ``nuisances_hat``).

    Shapes: ``nuisances_hat`` (K,); the rest ().
    """

    mu_hat: jax.Array  # best-fit signal strength
    p16: jax.Array  # lower edge of the 68.27% interval: profile Δ(−ln L) = 0.5 below mu_hat
    p84: jax.Array  # upper edge of the 68.27% interval: profile Δ(−ln L) = 0.5 above mu_hat
    nuisances_hat: jax.Array  # best-fit nuisance parameters alpha (their centres if profile=False)
    nll_min: jax.Array  # −ln L at the minimum, relative to the saturated model, plus constraints
    sigma_hessian: jax.Array  # sqrt of the mu-mu element of the inverse Hessian at the minimum
    converged: jax.Array  # bool: minimum and both crossings reached within ``tolerance``


def poisson_nll(lam: jax.Array, counts: jax.Array) -> jax.Array:
    """Poisson −ln L of ``counts`` given expected yields ``lam``, relative to the saturated model.

    Returns ``sum(lam - n + n log(n / lam))`` (``lam`` for empty bins): ``sum(lam - n log lam)``
    up to a ``lam``-independent constant, but O(1) per bin instead of O(n), so it stays accurate
    in float32 at large counts. A bin with ``lam <= 0`` (``lam < 0`` if it is empty) gives
    ``+inf``, with finite (zero) gradients.

    Shapes: lam (B,), counts (B,) -> ().
    """
    lam = jnp.asarray(lam)
    counts = jnp.asarray(counts, dtype=lam.dtype)
    occupied = counts > 0
    valid = jnp.where(occupied, lam > 0, lam >= 0)
    n = jnp.where(occupied, counts, 1)
    # Substituting a harmless value before the logarithm keeps gradients of invalid bins finite.
    lam = jnp.where(valid, lam, n)
    term = jnp.where(occupied, _saturated_term(lam, n), lam)
    return jnp.sum(jnp.where(valid, term, jnp.inf))


@jax.custom_jvp
def _saturated_term(lam: jax.Array, n: jax.Array) -> jax.Array:
    """``lam - n + n log(n / lam) = n (r - log1p(r))`` with ``r = (lam - n) / n``; lam, n > 0."""
    r = (lam - n) / n
    # log1p(r) = 2 atanh(u) with u = r / (2 + r), so r - log1p(r) = r^2/(2+r) - 2 (atanh(u) - u).
    # For |r| < 1/4, |u| < 1/7 and the atanh series through u^15 is exact to ~1e-14; the direct
    # form there would lose the leading digits to cancellation (all of them in float32 at 1e6).
    u = r / (2 + r)
    u2 = u * u
    tail = jnp.zeros_like(u)  # (atanh(u) - u) / u^3 = 1/3 + u^2/5 + ... + u^12/15, by Horner
    for k in (15, 13, 11, 9, 7, 5, 3):
        tail = 1 / k + u2 * tail
    series = r * r / (2 + r) - 2 * u * u2 * tail
    return n * jnp.where(jnp.abs(r) < 0.25, series, r - jnp.log1p(r))


@_saturated_term.defjvp
def _saturated_term_jvp(primals, tangents):
    # Written out so that derivatives skip the series (smaller, faster-compiling Hessians).
    lam, n = primals
    dlam, dn = tangents
    return _saturated_term(lam, n), (lam - n) / lam * dlam + jnp.log(n / lam) * dn


def _value_grad_hessian(f: Callable[[jax.Array], jax.Array]):
    """``x -> (f(x), ∇f(x), ∇²f(x))`` in one forward-over-reverse pass."""

    def grad_with_value(x):
        value, grad = jax.value_and_grad(f)(x)
        return grad, (value, grad)

    def value_grad_hessian(x):
        hessian, (value, grad) = jax.jacfwd(grad_with_value, has_aux=True)(x)
        return value, grad, hessian

    return value_grad_hessian


def _nll_rounding(value: jax.Array) -> jax.Array:
    """Resolution of a computed −ln L of size ``value``: a few ulps summed over bins."""
    return 64 * jnp.finfo(value.dtype).eps * jnp.abs(value)


def _damped_step(objective, x, value, grad, hessian, damping, lengths=(1.0, 0.5, 0.25, 0.125)):
    """One descent step from ``x``; returns ``(x, objective(x), damping)`` after it.

    Solves ``(H + damping * diag|H|) delta = -g`` (Levenberg-Marquardt: safe where ``H`` is
    indefinite or ill-conditioned) and takes the best of ``lengths`` times ``delta``, evaluated in
    parallel (the quadratic model overshoots far from the minimum or near a zero expected yield).
    Where the predicted decrease is below the rounding of −ln L, the values cannot rank the points
    and the full step is taken. The damping shrinks tenfold after a kept step and grows tenfold
    after a rejected one.
    """
    lengths = jnp.array(lengths, x.dtype)
    scale = jnp.maximum(jnp.abs(jnp.diag(hessian)), jnp.finfo(x.dtype).tiny)
    direction = -jnp.linalg.solve(hessian + damping * jnp.diag(scale), grad)
    line = jax.vmap(lambda length: objective(x + length * direction))(lengths)
    best = jnp.argmin(jnp.where(jnp.isnan(line), jnp.inf, line))
    predicted_decrease = -0.5 * (grad @ direction)
    near = (predicted_decrease >= 0) & (predicted_decrease < 1e-4 + _nll_rounding(value))
    length = jnp.where(near, 1.0, lengths[best])
    new_value = jnp.where(near, line[0], line[best])
    accept = jnp.isfinite(new_value) & (near | (new_value <= value))
    return (
        jnp.where(accept, x + length * direction, x),
        jnp.where(accept, new_value, value),
        jnp.where(accept, 0.1, 10.0) * damping,
    )


def _minimise(objective, x0: jax.Array, steps: int):
    """Minimise ``objective`` by ``steps`` damped Newton steps (one Hessian each).

    Returns ``(x, f(x), g, H)`` with ``g, H`` the gradient and Hessian at the start of the last
    step (at convergence the last step is negligible).
    """
    value_grad_hessian = _value_grad_hessian(objective)

    def step(_, state):
        x, _, _, _, damping = state
        value, grad, hessian = value_grad_hessian(x)
        x, value, damping = _damped_step(objective, x, value, grad, hessian, damping)
        return x, value, grad, hessian, damping

    dim = x0.shape[0]
    damping = jnp.asarray(1e-3, x0.dtype)
    state = (x0, objective(x0), jnp.zeros_like(x0), jnp.eye(dim, dtype=x0.dtype), damping)
    x, value, grad, hessian, _ = jax.lax.fori_loop(0, steps, step, state)
    return x, value, grad, hessian


def _interval_edge(objective, theta_hat, nll_min, covariance, side, steps: int, tolerance):
    """Crossing of the profile ``q(mu) = 0.5`` on one side (``side`` = -1 or +1) of ``mu_hat``.

    Works in ``t = side * (mu - mu_hat) >= 0``. Each iteration evaluates one Hessian at
    ``(t, z)`` and then, if ``z`` is profiled to within the quadratic model (Newton decrement
    below 0.1), takes the joint root step in ``t`` and ``z``; if not, a damped Newton step in ``z``
    at fixed ``t``; if the point has a non-positive expected yield, halves the way back to the last
    valid point. Returns ``(mu_edge, converged)``, where ``converged`` judges the last evaluated
    point, one root step before ``mu_edge``.
    """
    value_grad_hessian = _value_grad_hessian(objective)

    def iterate(_, state):
        t, z, t_in, t_out, damping, t_valid, z_valid, _ = state
        mu = theta_hat[0] + side * t

        def with_mu(z):
            return jnp.concatenate([mu[None], z])

        value, grad, hessian = value_grad_hessian(with_mu(z))
        h_zz, h_zmu, g_z = hessian[1:, 1:], hessian[1:, 0], grad[1:]
        solved = jnp.linalg.solve(h_zz, jnp.stack([g_z, h_zmu], axis=1))
        z_step, z_slope = solved[:, 0], solved[:, 1]
        decrement = g_z @ z_step
        # Profile q and dq/dt from the quadratic model in z (envelope theorem plus the first-order
        # correction for a z that is not yet exactly profiled).
        q = value - 0.5 * decrement - nll_min
        dq_dt = side * (grad[0] - h_zmu @ z_step)
        valid = jnp.isfinite(value)
        profiled = valid & jnp.isfinite(q) & jnp.isfinite(dq_dt) & (decrement >= 0) & (decrement < 0.1)

        # Root step: Newton on r = sqrt(2 q) = 1 inside the bracket, else bisect (or double).
        t_in = jnp.where(profiled & (q < 0.5), jnp.maximum(t_in, t), t_in)
        t_out = jnp.where(profiled & (q >= 0.5), jnp.minimum(t_out, t), t_out)
        r = jnp.sqrt(2 * jnp.maximum(q, 0))
        t_newton = t + (1 - r) * r / dq_dt
        take = (dq_dt > 0) & (t_newton >= t_in) & (t_newton <= t_out)
        fallback = jnp.where(jnp.isfinite(t_out), 0.5 * (t_in + t_out), 2 * t_in)
        t_root = jnp.where(take, t_newton, fallback)
        z_root = z - z_step - z_slope * side * (t_root - t)

        z_profile, _, new_damping = _damped_step(
            lambda z: objective(with_mu(z)), z, value, g_z, h_zz, damping, lengths=(1.0,)
        )
        t_new = jnp.where(profiled, t_root, jnp.where(valid, t, 0.5 * (t_valid + t)))
        z_new = jnp.where(profiled, z_root, jnp.where(valid, z_profile, 0.5 * (z_valid + z)))
        damping = jnp.where(valid & ~profiled, new_damping, damping)
        # A stat-only fit of data with shifted nuisances can end at −ln L ~ 1e3, where float32
        # resolves it only to ~1e-2.
        resolution = tolerance + _nll_rounding(nll_min)
        crossed = jnp.abs(value - nll_min - 0.5) < resolution
        converged = profiled & crossed & (decrement < tolerance)
        t_valid = jnp.where(valid, t, t_valid)
        z_valid = jnp.where(valid, z, z_valid)
        return t_new, z_new, t_in, t_out, damping, t_valid, z_valid, converged

    # Start one Hessian sigma out, with z moved along the fit's correlation with mu.
    t0 = jnp.sqrt(covariance[0, 0])
    z0 = theta_hat[1:] + side * covariance[1:, 0] / t0
    zero = jnp.zeros_like(t0)
    inf = jnp.full_like(t0, jnp.inf)
    state = (t0, z0, zero, inf, zero + 1e-3, zero, theta_hat[1:], jnp.array(False))
    t, *_, converged = jax.lax.fori_loop(0, steps, iterate, state)
    return theta_hat[0] + side * t, converged


def make_profile_fit(
    expected_fn: Callable[[jax.Array, jax.Array], jax.Array],
    constraint_center: jax.typing.ArrayLike,
    constraint_sigma: jax.typing.ArrayLike,
    *,
    profile: bool = True,
    mu_init: float = 1.0,
    newton_steps: int = 12,
    crossing_steps: int = 6,
    tolerance: float = 1e-3,
) -> Callable[[jax.Array], FitResult]:
    """Build a jitted ``fit(counts) -> FitResult``: profile-likelihood fit of a signal strength.

    Args:
      expected_fn: ``(mu, alpha) -> lam``, expected yields per bin (positive), e.g.
        ``mu * S(alpha) + B(alpha)``; shapes () and (K,) -> (B,).
      constraint_center, constraint_sigma: (K,) centres and widths of the Gaussian constraints
        ``sum((alpha - center)**2 / (2 sigma**2))``, in the units of ``alpha``.
      profile: minimise over the nuisances; ``False`` gives the statistical-only fit with
        ``alpha`` fixed at ``constraint_center``.
      mu_init: signal strength around which the starting value of ``mu`` is estimated.
      newton_steps: damped Newton steps for the global minimum.
      crossing_steps: Newton iterations for each interval edge.
      tolerance: in −ln L units, the largest Newton decrement (at the minimum and in the nuisances
        at each edge) and the largest ``|Δ(−ln L) - 0.5|`` at the edges for ``converged``.

    Returns:
      ``fit(counts)`` for one histogram of counts (B,); vmap it for a batch of PEs.
    """
    center = jnp.asarray(constraint_center, dtype=float)
    sigma = jnp.asarray(constraint_sigma, dtype=float)
    if center.ndim != 1 or center.shape != sigma.shape:
        raise ValueError(
            "constraint_center and constraint_sigma must be 1-D arrays of the same length (one "
            f"entry per nuisance); got shapes {center.shape} and {sigma.shape}."
        )
    # Checked on the host value: inside an outer jit, jnp.asarray of a constant is a tracer.
    if not np.all(np.asarray(constraint_sigma) > 0):
        raise ValueError(f"constraint_sigma must be positive; got {np.asarray(constraint_sigma)}.")

    def alpha_of(z):
        return center + sigma * z if profile else center

    def nll(theta, counts):
        mu, z = theta[0], theta[1:]
        return poisson_nll(expected_fn(mu, alpha_of(z)), counts) + 0.5 * jnp.sum(z * z)

    def initial_point(counts, objective):
        """``z = 0``, and ``mu`` one Fisher-scoring step from ``mu_init`` (a weighted moment)."""
        mu0 = jnp.asarray(mu_init, dtype=counts.dtype)
        lam, signal = jax.jvp(lambda mu: expected_fn(mu, center), (mu0,), (jnp.ones_like(mu0),))
        weight = signal / lam
        mu_moment = mu0 + jnp.sum(weight * (counts - lam)) / jnp.sum(weight * signal)
        z0 = jnp.zeros(center.shape[0] if profile else 0, counts.dtype)
        theta = jnp.concatenate([mu_moment[None], z0])
        # Fall back to mu_init if the estimate makes some expected yield non-positive.
        return jnp.where(jnp.isfinite(objective(theta)), theta, jnp.concatenate([mu0[None], z0]))

    @jax.jit
    def fit(counts: jax.Array) -> FitResult:
        counts = jnp.asarray(counts, dtype=float)
        if counts.ndim != 1:
            raise ValueError(
                f"fit takes one histogram of counts, shape (B,); got {counts.shape}. "
                "Use jax.vmap(fit) for a batch of pseudo-experiments."
            )
        objective = partial(nll, counts=counts)
        theta, nll_min, grad, hessian = _minimise(objective, initial_point(counts, objective), newton_steps)
        covariance = jnp.linalg.inv(hessian)
        positive_definite = jnp.all(jnp.isfinite(jnp.linalg.cholesky(hessian)))
        fit_converged = positive_definite & (grad @ covariance @ grad < tolerance)
        edge = partial(_interval_edge, objective, theta, nll_min, covariance, steps=crossing_steps, tolerance=tolerance)
        edges, edges_converged = jax.vmap(edge)(jnp.array([-1.0, 1.0], counts.dtype))
        return FitResult(
            mu_hat=theta[0],
            p16=edges[0],
            p84=edges[1],
            nuisances_hat=alpha_of(theta[1:]),
            nll_min=nll_min,
            sigma_hessian=jnp.sqrt(covariance[0, 0]),
            converged=fit_converged & jnp.all(edges_converged),
        )

    return fit
