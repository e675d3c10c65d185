"""SOAP descriptors in JAX (dscribe's GTO convention) and frame/window similarity kernels.

The smooth overlap of atomic positions (Bartók, Kondor & Csányi, PRB 87, 184115, 2013) of atom
``i``: the neighbour density of each species ``Z``, a sum of unnormalised Gaussians
``exp(-|r - r_j|² / 2σ²)`` over atoms ``j`` of species ``Z`` (atom ``i`` itself included), is
expanded on radial functions ``g_nl`` times real spherical harmonics ``Y_lm`` (orthonormal on the
sphere),

    c^{iZ}_{nlm} = Σ_j w(r_ij) ∫ d³r g_nl(r) Y_lm(r̂) exp(-η |r - r_ij|²),      η = 1 / (2σ²),

and the rotationally invariant power spectrum is

    p^{i, Z Z'}_{n n' l} = π √(8 / (2l + 1)) Σ_m c^{iZ}_{nlm} c^{iZ'}_{n'lm}.

Radial basis (dscribe's ``rbf="gto"``): ``g_nl(r) = Σ_k β_lnk r^l exp(-α_lk r²)`` with
``α_lk = -ln(10⁻³ / a_k^l) / a_k²`` for ``a_k`` evenly spaced in [1 Å, r_cut] (the k-th
primitive decays to 10⁻³ at ``a_k``) and ``β_l = S_l^{-1/2}`` (Löwdin orthonormalisation on
``∫ r² dr``). The Gaussian-times-GTO integral is analytic,

    ∫ d³r r^l e^{-α r²} Y_lm(r̂) e^{-η |r - x|²} = π^{3/2} η^l (α + η)^{-(l + 3/2)}
                                                   · exp(-αη |x|² / (α + η)) · |x|^l Y_lm(x̂),

so each neighbour costs one solid harmonic ``|x|^l Y_lm(x̂)`` (a polynomial, from
``e3nn.spherical_harmonics(normalize=False)``) and one radial function per (l, n), read from a
cubic table built in float64 (the Löwdin sum cancels too much to evaluate in float32).

Feature layout is dscribe's (``SOAP.get_location``): species pairs ``Z ≤ Z'`` in increasing atomic
number; within a pair, ``l`` slowest, then ``n``, then ``n'``, with ``n ≤ n'`` when ``Z = Z'``.
``D = (S n_max)(S n_max + 1) / 2 · (l_max + 1)`` features for ``S`` species.

Cutoff. dscribe keeps neighbours closer than ``r_cut + σ √(-2 ln 10⁻³)`` (≈ r_cut + 3.72 σ) and
drops the rest abruptly, so its descriptor jumps (≈ 10⁻³ relative per atom) when an atom leaves.
``SoapConfig(smooth_cutoff=False)`` reproduces that, and this module then equals dscribe's vector
feature by feature (max deviation / max feature ~1e-10 with x64 enabled, ~5e-7 in float32). The
default ``smooth_cutoff=True`` multiplies each neighbour's density by
``w(r) = ½ (1 + cos(π (r - r_cut) / padding))`` between ``r_cut`` and ``r_cut + padding`` (1 below,
0 above), which makes the descriptor C¹ in the positions; it differs from dscribe only through
atoms farther than ``r_cut`` from the centre (aspirin, r_cut 5 Å: kernels within 6e-4 of dscribe's).

Frame descriptor and kernel (the similarity study). A frame is described by the *outer* average
(De, Bartók, Csányi & Ceriotti, PCCP 18, 13754, 2016): the mean over its atoms of the per-atom
power spectra, ``p̄ = (1/N) Σ_i p^i``, whose dot product is the mean of all atom-pair dot
products between two frames (the "average kernel"). dscribe's ``average="inner"`` (mean the
coefficients over atoms, then one power spectrum) is available as ``average="inner"``. Two frames
compare by ``k(A, B) = (p̄_A · p̄_B / |p̄_A| |p̄_B|)^ζ`` and two windows of frames by the mean of
``k`` over all frame pairs. The per-atom best-match kernel (REMatch) is not implemented.

Padding convention (as :mod:`tasks.mlff.graph`): atomic number 0 marks a padding atom; it is no
neighbour and no centre (its per-atom row is zero and averages skip it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache, partial

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxbench import progress
from jaxbench.errors import ConfigError, DataFormatError

from .data import evenly_spaced
from .graph import PADDING_SPECIES
from .settings import GTO_DECAY_THRESHOLD, SoapConfig

AVERAGES = ("outer", "inner")


# -- basis constants (host, float64) ---------------------------------------------------------------
def gto_radial_basis(config: SoapConfig) -> tuple[np.ndarray, np.ndarray]:
    """dscribe's orthonormal GTO basis: exponents α (l_max+1, n_max) in 1/Å², β (l_max+1, n_max, n_max).

    ``g_nl(r) = Σ_k β[l, n, k] r^l exp(-α[l, k] r²)`` satisfies ``∫_0^∞ r² g_nl g_n'l dr = δ_nn'``.
    """
    alphas, betas = _gto_radial_basis(float(config.r_cut), int(config.n_max), int(config.l_max))
    return alphas.copy(), betas.copy()


@lru_cache(maxsize=32)
def _gto_radial_basis(r_cut: float, n_max: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    decay = np.linspace(1.0, r_cut, n_max)
    alphas = np.zeros((l_max + 1, n_max))
    betas = np.zeros((l_max + 1, n_max, n_max))
    for l in range(l_max + 1):
        alpha = -np.log(GTO_DECAY_THRESHOLD / decay**l) / decay**2
        # Overlap of primitives: ∫ r^{2l+2} exp(-(α_k + α_k') r²) dr = Γ(l + 3/2) / 2 (α_k + α_k')^{l+3/2}.
        overlap = 0.5 * math.gamma(l + 1.5) * (alpha[:, None] + alpha[None, :]) ** (-l - 1.5)
        eigenvalues, vectors = np.linalg.eigh(overlap)
        if eigenvalues.min() <= 0.0:
            raise ConfigError(
                f"the GTO overlap matrix for l={l} is not positive definite (n_max={n_max}, "
                f"r_cut={r_cut} Å); lower n_max or raise r_cut."
            )
        alphas[l] = alpha
        betas[l] = (vectors / np.sqrt(eigenvalues)[None, :]) @ vectors.T  # S^{-1/2}, Löwdin
    return alphas, betas


@lru_cache(maxsize=32)
def _expansion_constants(config: SoapConfig) -> tuple[np.ndarray, np.ndarray]:
    """Weights B (l_max+1, n_max, n_max) and exponents γ (l_max+1, n_max) in 1/Å² of the radial
    projection ``R_nl(x) = Σ_k B[l, n, k] exp(-γ[l, k] x²)`` (times the solid harmonic)."""
    alphas, betas = _gto_radial_basis(float(config.r_cut), int(config.n_max), int(config.l_max))
    eta = 1.0 / (2.0 * float(config.sigma) ** 2)
    ls = np.arange(config.l_max + 1)[:, None]
    primitive = math.pi**1.5 * eta**ls * (alphas + eta) ** (-(ls + 1.5))
    weights = betas * primitive[:, None, :]
    exponents = alphas * eta / (alphas + eta)
    return weights, exponents


#: Spacing (Å) of the radial lookup table; cubic Hermite error < 1e-7 of each function's scale
#: for sigma ≥ 0.2 Å at this spacing (1e-9 for sigma = 0.5 Å, r_cut = 5 Å).
RADIAL_TABLE_SPACING = 0.005


@lru_cache(maxsize=32)
def _radial_table(config: SoapConfig) -> tuple[float, np.ndarray]:
    """Piecewise-cubic table of ``R_nl(r) = Σ_k B[l, n, k] exp(-γ[l, k] r²)`` on [0, outer_cutoff].

    Returns the knot spacing h (Å) and coefficients (knots - 1, 4, l_max+1, n_max) of
    ``R = a0 + a1 u + a2 u² + a3 u³`` on each interval (``u = r/h - i``), from float64 values and
    derivatives (cubic Hermite, C¹ in r). Why a table: the Löwdin weights B alternate in sign and
    cancel by ~5·10⁴, so the direct sum loses ~5 digits in float32; the table's coefficients carry
    the cancellation out in float64.
    """
    weights, exponents = _expansion_constants(config)
    knots = max(int(math.ceil(config.outer_cutoff / RADIAL_TABLE_SPACING)) + 1, 8)
    r = np.linspace(0.0, config.outer_cutoff, knots)
    h = float(r[1] - r[0])
    primitive = np.exp(-exponents[None, :, :] * r[:, None, None] ** 2)  # (knot, l, k)
    value = np.einsum("lnk,rlk->rln", weights, primitive)
    slope = h * np.einsum("lnk,rlk->rln", weights, -2.0 * exponents[None, :, :] * r[:, None, None] * primitive)
    f0, f1, d0, d1 = value[:-1], value[1:], slope[:-1], slope[1:]
    coefficients = np.stack([f0, d0, 3.0 * (f1 - f0) - 2.0 * d0 - d1, 2.0 * (f0 - f1) + d0 + d1], axis=1)
    return h, coefficients


@lru_cache(maxsize=32)
def _feature_layout(config: SoapConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Static gathers from (channel a, channel b, l) to dscribe's feature order.

    Returns ``pair_a, pair_b`` (P,) channel indices (channel = species index · n_max + n) of the
    ``a ≤ b`` channel pairs, ``feature_pair`` (D,) and ``feature_l`` (D,) naming each feature's
    pair and l.
    """
    s_count, n_max = len(config.species), config.n_max
    pair_index: dict[tuple[int, int], int] = {}
    feature_pair, feature_l = [], []
    for s in range(s_count):
        for t in range(s, s_count):
            for l in range(config.l_max + 1):
                for n in range(n_max):
                    for k in range(n if s == t else 0, n_max):
                        key = (s * n_max + n, t * n_max + k)
                        feature_pair.append(pair_index.setdefault(key, len(pair_index)))
                        feature_l.append(l)
    pairs = np.array(sorted(pair_index, key=pair_index.get), dtype=np.int32)
    return pairs[:, 0], pairs[:, 1], np.array(feature_pair, np.int32), np.array(feature_l, np.int32)


# -- descriptors (jit/vmap friendly; config is static) ------------------------------------------------
def _coefficients_by_l(config: SoapConfig, species: jax.Array, positions: jax.Array) -> list[jax.Array]:
    """Density coefficients split by l: l_max+1 arrays (N, S·n_max, 2l+1), channel = s·n_max + n.

    One fused multiply-and-sum over neighbours per l; this beat a single einsum over all lm by
    3-6x on CPU (the (N, N, M, n) product never has to be stored).
    """
    positions = jnp.asarray(positions)
    dtype = positions.dtype if jnp.issubdtype(positions.dtype, jnp.floating) else jnp.float32
    positions = positions.astype(dtype)
    species = jnp.asarray(species)
    num_atoms = positions.shape[0]
    spacing, table_np = _radial_table(config)
    table = jnp.asarray(table_np, dtype)

    difference = positions[None, :, :] - positions[:, None, :]  # (i, j, 3): r_j - r_i
    squared = jnp.sum(difference * difference, axis=-1)
    # Solid harmonics |x|^l Y_lm(x̂) are polynomials: finite with finite gradients at x = 0 (self term).
    solid = e3nn.spherical_harmonics(
        list(range(config.l_max + 1)), e3nn.IrrepsArray("1o", difference), normalize=False, normalization="integral"
    ).array  # (i, j, M)
    # The floor keeps the square root's gradient finite at r = 0 (self term), where R is flat.
    distance = jnp.sqrt(jnp.maximum(squared, 1e-12))
    position = distance / spacing
    interval = jnp.clip(jnp.floor(position).astype(jnp.int32), 0, table.shape[0] - 1)
    u = jnp.clip(position - interval.astype(dtype), 0.0, 1.0)[:, :, None, None]
    a = table[interval]  # (i, j, 4, l, n); beyond the outer cutoff the weight below is 0
    radial = ((a[:, :, 3] * u + a[:, :, 2]) * u + a[:, :, 1]) * u + a[:, :, 0]  # (i, j, l, n)

    channel = (species[:, None] == jnp.asarray(config.species, species.dtype)[None, :]).astype(dtype)  # (j, S)
    neighbour = channel[None, :, :] * _cutoff_weight(config, squared, distance)[:, :, None]  # (i, j, S)
    centre = (species != PADDING_SPECIES).astype(dtype)[:, None, None]
    by_l = []
    for l in range(config.l_max + 1):
        weighted = (neighbour[:, :, :, None] * radial[:, :, None, l, :]).reshape(num_atoms, num_atoms, -1)
        harmonics = solid[:, :, l * l : (l + 1) * (l + 1)]
        by_l.append(jnp.sum(weighted[:, :, :, None] * harmonics[:, :, None, :], axis=1) * centre)
    return by_l


def density_coefficients(config: SoapConfig, species: jax.Array, positions: jax.Array) -> jax.Array:
    """Expansion coefficients c[i, Z, n, lm] of every atom's neighbour density (dimensionless).

    Shapes: species (N,) int atomic numbers (0 = padding), positions (N, 3) Å ->
    (N, len(config.species), n_max, (l_max+1)²); the lm axis is e3nn's order. Rows of padding
    atoms are zero.
    """
    by_l = _coefficients_by_l(config, species, positions)
    stacked = jnp.concatenate(by_l, axis=-1)
    return stacked.reshape(stacked.shape[0], len(config.species), config.n_max, stacked.shape[-1])


def _cutoff_weight(config: SoapConfig, squared: jax.Array, distance: jax.Array) -> jax.Array:
    """Neighbour weight w(r) (squared distance in Å², distance in Å): cosine-damped or a hard cut."""
    outer = config.outer_cutoff
    if not config.smooth_cutoff:
        return (squared < outer * outer).astype(squared.dtype)
    x = jnp.clip((distance - config.r_cut) / config.cutoff_padding, 0.0, 1.0)
    return 0.5 * (1.0 + jnp.cos(jnp.pi * x))


def _features_from_gram(config: SoapConfig, gram_by_l: list[jax.Array]) -> jax.Array:
    """dscribe-ordered features (..., D) from per-l channel Gram matrices (..., S·n, S·n)."""
    pair_a, pair_b, feature_pair, feature_l = _feature_layout(config)
    prefactor = [math.pi * math.sqrt(8.0 / (2 * l + 1)) for l in range(config.l_max + 1)]
    per_l = jnp.stack([g[..., pair_a, pair_b] * prefactor[l] for l, g in enumerate(gram_by_l)], axis=-1)
    return per_l[..., feature_pair, feature_l]  # from (..., P, l_max+1)


def _split_by_l(config: SoapConfig, coefficients: jax.Array) -> list[jax.Array]:
    lead = coefficients.shape[:-3]
    channels = coefficients.reshape(*lead, len(config.species) * config.n_max, coefficients.shape[-1])
    return [channels[..., l * l : (l + 1) * (l + 1)] for l in range(config.l_max + 1)]


def power_spectrum(config: SoapConfig, coefficients: jax.Array) -> jax.Array:
    """Rotation-invariant power spectrum (..., D) of coefficients (..., Z, n_max, (l_max+1)²).

    ``p = π √(8/(2l+1)) Σ_m c_{Z n l m} c_{Z' n' l m}`` in dscribe's feature order (module docstring).
    """
    return _features_from_gram(
        config, [jnp.einsum("...am,...bm->...ab", c, c) for c in _split_by_l(config, coefficients)]
    )


def soap_power_spectrum(config: SoapConfig, species: jax.Array, positions: jax.Array) -> jax.Array:
    """Per-atom SOAP power spectra (N, D) of one frame: species (N,), positions (N, 3) Å.

    Equals dscribe's ``SOAP(rbf="gto", average="off").create`` (up to the cutoff, see the module
    docstring). Padding atoms get zero rows.
    """
    by_l = _coefficients_by_l(config, species, positions)
    return _features_from_gram(config, [jnp.einsum("iam,ibm->iab", c, c) for c in by_l])


def average_soap(config: SoapConfig, species: jax.Array, positions: jax.Array, average: str = "outer") -> jax.Array:
    """Frame descriptor (D,) averaged over the real atoms: species (N,), positions (N, 3) Å.

    ``average="outer"``: mean of the per-atom power spectra (the average-kernel descriptor; dscribe
    ``average="outer"``). ``average="inner"``: power spectrum of the atom-averaged coefficients
    (dscribe ``average="inner"``).
    """
    if average not in AVERAGES:
        raise ConfigError(f"average must be one of {AVERAGES}; got {average!r}.")
    by_l = _coefficients_by_l(config, species, positions)
    real = (jnp.asarray(species) != PADDING_SPECIES).astype(by_l[0].dtype)
    count = jnp.maximum(jnp.sum(real), 1.0)
    # Padding rows of the coefficients are zero, so the sums over atoms run over real atoms only.
    if average == "inner":
        means = [jnp.sum(c, axis=0) / count for c in by_l]
        return _features_from_gram(config, [m @ m.T for m in means])
    # Σ_i Σ_m c_iam c_ibm is one matrix product over the joint (atom, m) axis.
    return _features_from_gram(config, [jnp.einsum("iam,ibm->ab", c, c) / count for c in by_l])


# -- kernels ----------------------------------------------------------------------------------------------
def _check_zeta(zeta) -> int:
    if int(zeta) != zeta or zeta < 1:
        raise ConfigError(f"zeta must be a positive integer (the kernel exponent); got {zeta!r}.")
    return int(zeta)


def frame_kernel(pa: jax.Array, pb: jax.Array, zeta: int = 2) -> jax.Array:
    """Normalised SOAP kernel ``(pa·pb / |pa||pb|)^zeta`` of two descriptors (D,), dimensionless.

    1 for identical frames; zeta (a positive integer) sharpens the contrast.
    """
    zeta = _check_zeta(zeta)
    cosine = jnp.dot(pa, pb) / (jnp.linalg.norm(pa) * jnp.linalg.norm(pb))
    return cosine**zeta


def _unit_rows(descriptors: jax.Array) -> jax.Array:
    return descriptors / jnp.linalg.norm(descriptors, axis=-1, keepdims=True)


def kernel_matrix(soap_a: jax.Array, soap_b: jax.Array, zeta: int = 2) -> jax.Array:
    """All frame kernels K[i, j] = frame_kernel(soap_a[i], soap_b[j]): (Fa, D), (Fb, D) -> (Fa, Fb)."""
    zeta = _check_zeta(zeta)
    return (_unit_rows(soap_a) @ _unit_rows(soap_b).T) ** zeta


def window_similarity(
    soap_a: jax.Array, soap_b: jax.Array, zeta: int = 2, chunk: int = 512, normalize: bool = False
) -> jax.Array:
    """Mean frame kernel between two windows of frames, (Fa, D) and (Fb, D) -> scalar ≤ 1.

    ``K̄(A, B) = (1 / Fa Fb) Σ_ij k(a_i, b_j)``. A window compared with itself scores below 1
    unless its frames are identical (it measures the window's spread too); ``normalize=True``
    returns ``K̄(A, B) / √(K̄(A, A) K̄(B, B))`` instead, which is 1 for windows of the same frames
    (in any order) and ≤ 1 otherwise (k^ζ is a positive-definite kernel). Rows go ``chunk`` at a
    time, so memory is O(chunk · max(Fa, Fb)) whatever the window sizes. zeta and chunk are static.
    """
    zeta, chunk = _check_zeta(zeta), int(chunk)
    if chunk < 1:
        raise ConfigError(f"chunk must be a positive integer; got {chunk!r}.")
    soap_a, soap_b = jnp.asarray(soap_a), jnp.asarray(soap_b)
    cross = _mean_kernel(soap_a, soap_b, zeta, chunk)
    if not normalize:
        return cross
    return cross / jnp.sqrt(_mean_kernel(soap_a, soap_a, zeta, chunk) * _mean_kernel(soap_b, soap_b, zeta, chunk))


@partial(jax.jit, static_argnums=(2, 3))
def _mean_kernel(soap_a: jax.Array, soap_b: jax.Array, zeta: int, chunk: int) -> jax.Array:
    num_a, num_b = soap_a.shape[0], soap_b.shape[0]
    chunk = min(chunk, num_a)
    num_chunks = -(-num_a // chunk)
    pad = num_chunks * chunk - num_a
    unit_a = jnp.pad(_unit_rows(soap_a), ((0, pad), (0, 0))).reshape(num_chunks, chunk, soap_a.shape[1])
    valid = jnp.pad(jnp.ones(num_a, soap_a.dtype), (0, pad)).reshape(num_chunks, chunk)
    unit_b = _unit_rows(soap_b)

    def chunk_sum(block):
        rows, weight = block
        return jnp.sum(weight[:, None] * (rows @ unit_b.T) ** zeta)

    return jnp.sum(jax.lax.map(chunk_sum, (unit_a, valid))) / (num_a * num_b)


# -- many frames --------------------------------------------------------------------------------------------
def check_species(config: SoapConfig, species: ArrayLike) -> np.ndarray:
    """Host check that every atomic number is padding (0) or in ``config.species``; returns int32 (N,)."""
    species = np.asarray(species)
    if species.ndim != 1 or species.dtype.kind not in "iu":
        raise DataFormatError(
            f"species must be a 1-D integer array of atomic numbers; got {species.dtype} {species.shape}."
        )
    unknown = sorted(set(np.unique(species).tolist()) - set(config.species) - {PADDING_SPECIES})
    if unknown:
        raise ConfigError(
            f"atomic numbers {unknown} are not in SoapConfig.species={config.species}; add them "
            "(every species gets its own density channel) or mark the atoms as padding (0)."
        )
    return species.astype(np.int32)


#: Frames vectorised together inside one jitted call; wider vmaps spill the (N, N, ...) work
#: arrays out of cache on CPU (8 was fastest for aspirin on 2 cores).
VMAP_WIDTH = 8


@partial(jax.jit, static_argnums=(0, 1, 2))
def _describe_block(config: SoapConfig, average: str, width: int, species: jax.Array, positions: jax.Array):
    """(B, D) frame descriptors of positions (B, N, 3) Å, ``width`` frames vectorised at a time."""
    return jax.lax.map(lambda frame: average_soap(config, species, frame, average), positions, batch_size=width)


def describe_frames(
    config: SoapConfig, species: ArrayLike, positions: ArrayLike, batch: int = 256, average: str = "outer"
) -> np.ndarray:
    """Frame descriptors (F, D) of many frames of one molecule, ``batch`` frames per jitted call.

    Shapes: species (N,) atomic numbers, positions (F, N, 3) Å. The last batch is padded by
    repeating a frame, so one compiled program serves every call with the same (N, batch)
    (fewer frames than ``batch``: the batch shrinks to a multiple of ``VMAP_WIDTH``).
    Inside a call, frames go ``VMAP_WIDTH`` at a time (``lax.map`` over ``vmap``). Computed in
    JAX's default float precision (float32 unless x64 is enabled); returns numpy.
    """
    if average not in AVERAGES:
        raise ConfigError(f"average must be one of {AVERAGES}; got {average!r}.")
    species = check_species(config, species)
    positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[1:] != (species.shape[0], 3):
        raise DataFormatError(f"positions must have shape (frames, {species.shape[0]}, 3) in Å; got {positions.shape}.")
    if int(batch) != batch or batch < 1:
        raise ConfigError(f"batch must be a positive integer; got {batch!r}.")
    num_frames = positions.shape[0]
    # Few frames: shrink the batch to whole vmap widths, so small calls share a compiled program.
    width = min(VMAP_WIDTH, int(batch))
    batch = min(int(batch), -(-max(num_frames, 1) // width) * width)
    out = np.zeros((num_frames, config.num_features), dtype=jnp.zeros(()).dtype)
    for start in range(0, num_frames, batch):
        block = positions[start : start + batch]
        size = block.shape[0]
        if size < batch:
            block = np.concatenate([block, np.repeat(block[-1:], batch - size, axis=0)])
        out[start : start + size] = np.asarray(_describe_block(config, average, width, species, block))[:size]
    return out


def subset_similarity(
    config: SoapConfig,
    species: ArrayLike,
    positions: ArrayLike,
    subsets: Sequence[ArrayLike],
    test: ArrayLike,
    n_frames: int,
) -> np.ndarray:
    """Normalised :func:`window_similarity` of each subset of frame indices to the ``test`` frames, each set
    described by ``n_frames`` of its frames, evenly spaced (all if fewer). Shapes: positions (F, N, 3) Å -> (S,)."""

    def describe(idx):
        idx = evenly_spaced(np.asarray(idx), min(n_frames, len(idx)))
        return describe_frames(config, species, np.asarray(positions)[idx])

    with progress.bar("mlff: SOAP similarity of the training sets", len(subsets) + 1) as advance:
        reference = describe(test)
        advance(info="test frames")
        similarity = []
        for subset in subsets:
            similarity.append(window_similarity(describe(subset), reference, normalize=True))
            advance()
    return np.asarray(similarity)
