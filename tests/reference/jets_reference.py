"""Float64 references for the jets models (tests only), written apart from jaxbench.tasks.jets.

- particle features: jagged awkward + vector arrays the way the Particle Transformer's
  ``utils/convert_top_datasets.py`` builds them, then ``top_kin.yaml``'s standardisation;
- pair features: weaver-core's ``pairwise_lv_fts_pp`` formulas in numpy, one jet at a time;
- N-subjettiness: fastjet's exclusive kT axes and an explicit sum;
- synthetic jets: a few collimated prongs of massless particles (E, px, py, pz) GeV, pT-ordered, zero-padded.
"""

from __future__ import annotations

import awkward as ak
import fastjet
import numpy as np
import vector

vector.register_awkward()

_CENTRE_SCALE = {  # top_kin.yaml: [name, subtract_by, multiply_by], clip [-5, 5]; None = no transformation
    "pt_log": (1.7, 0.7),
    "e_log": (2.0, 0.7),
    "logptrel": (-4.7, 0.7),
    "logerel": (-4.7, 0.7),
    "deltaR": (0.2, 4.0),
    "deta": None,
    "dphi": None,
}


def random_jets(
    rng: np.random.Generator,
    num_jets: int,
    max_particles: int,
    prongs: int = 3,
    min_particles: int = 5,
    max_real: int | None = None,
    spread: float = 0.08,
) -> np.ndarray:
    """(num_jets, max_particles, 4) float32 synthetic jets: ``prongs`` prongs within ΔR ~ 0.5 of a random axis
    (|η| < 2, pT ≈ 600 GeV), each a Gaussian cloud (σ = ``spread``) of massless particles with exponential pT shares."""
    max_real = max_particles if max_real is None else max_real
    out = np.zeros((num_jets, max_particles, 4), np.float64)
    for j in range(num_jets):
        n = int(rng.integers(min_particles, max_real + 1))
        eta0, phi0 = rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi)
        centres = np.stack([eta0 + rng.normal(0, 0.25, prongs), phi0 + rng.normal(0, 0.25, prongs)], -1)
        which = rng.integers(0, prongs, n)
        eta = centres[which, 0] + rng.normal(0, spread, n)
        phi = centres[which, 1] + rng.normal(0, spread, n)
        pt = rng.exponential(1.0, n) * rng.dirichlet(np.ones(prongs))[which]
        pt = 600.0 * pt / pt.sum() + 0.05
        order = np.argsort(-pt)
        pt, eta, phi = pt[order], eta[order], phi[order]
        out[j, :n] = np.stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], -1)
    return out.astype(np.float32)


def _jagged(p4: np.ndarray):
    p4 = np.asarray(p4, np.float64)
    mask = p4[..., 0] > 0
    counts = mask.sum(1)
    comp = [ak.unflatten(p4[..., k][mask], counts) for k in range(4)]
    return vector.zip({"px": comp[1], "py": comp[2], "pz": comp[3], "energy": comp[0]}), counts


def jet_kinematics_reference(p4: np.ndarray) -> dict[str, np.ndarray]:
    """pt, eta, phi, mass, energy of the summed constituents (vector, float64)."""
    parts, _ = _jagged(p4)
    jet = ak.sum(parts, axis=1)
    return {k: ak.to_numpy(getattr(jet, k)) for k in ("pt", "eta", "phi", "mass", "energy")}


def particle_features_reference(p4: np.ndarray, max_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """The seven standardised pf_features (pt_log, e_log, logptrel, logerel, deltaR, deta, dphi), zero-padded."""
    parts, counts = _jagged(p4)
    jet = ak.sum(parts, axis=1)
    etasign = np.sign(ak.to_numpy(jet.eta))
    etasign[etasign == 0] = 1
    deta = (parts.eta - jet.eta) * etasign
    dphi = parts.deltaphi(jet)
    pt = np.hypot(parts.px, parts.py)
    values = {
        "pt_log": np.log(pt),
        "e_log": np.log(parts.energy),
        "logptrel": np.log(pt / jet.pt),
        "logerel": np.log(parts.energy / jet.energy),
        "deltaR": np.hypot(deta, dphi),
        "deta": deta,
        "dphi": dphi,
    }
    n = p4.shape[0]
    x = np.zeros((n, max_particles, 7))
    for k, (name, rule) in enumerate(_CENTRE_SCALE.items()):
        v = values[name]
        if rule is not None:
            flat = np.clip((ak.to_numpy(ak.flatten(v)) - rule[0]) * rule[1], -5, 5)  # weaver's _clip
            v = ak.unflatten(flat, ak.num(v))
        padded = ak.fill_none(ak.pad_none(v, max_particles, clip=True), 0.0)
        x[..., k] = ak.to_numpy(padded)
    mask = np.arange(max_particles)[None, :] < np.minimum(counts, max_particles)[:, None]
    return x, mask


def pair_features_reference(p4: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(N, P, P, 4) [ln kT, ln z, ln Δ, ln m²] as weaver-core's pairwise_lv_fts_pp, zero for padded pairs."""
    p4 = np.asarray(p4, np.float64)
    out = np.zeros(p4.shape[:2] + p4.shape[1:2] + (4,))
    for j, jet in enumerate(p4):
        real = jet[jet[:, 0] > 0]
        e, px, py, pz = real.T
        pt = np.hypot(px, py)
        rap = 0.5 * np.log(1 + 2 * pz / np.maximum(e - pz, 1e-20))
        phi = np.arctan2(py, px)
        dphi = (phi[:, None] - phi[None, :] + np.pi) % (2 * np.pi) - np.pi
        delta = np.sqrt((rap[:, None] - rap[None, :]) ** 2 + dphi**2)
        ptmin = np.minimum(pt[:, None], pt[None, :])
        s = real[:, None, :] + real[None, :, :]
        m2 = s[..., 0] ** 2 - np.sum(s[..., 1:] ** 2, -1)
        k = len(real)
        out[j, :k, :k, 0] = np.log(np.maximum(ptmin * delta, eps))
        out[j, :k, :k, 1] = np.log(np.maximum(ptmin / np.maximum(pt[:, None] + pt[None, :], eps), eps))
        out[j, :k, :k, 2] = np.log(np.maximum(delta, eps))
        out[j, :k, :k, 3] = np.log(np.maximum(m2, eps))
    return out


def _pseudojets(jet: np.ndarray) -> list:
    jet = np.asarray(jet, np.float64)
    return [fastjet.PseudoJet(float(px), float(py), float(pz), float(e)) for e, px, py, pz in jet[jet[:, 0] > 0]]


def exclusive_kt_axes_fastjet(jet: np.ndarray, n: int, radius: float = 0.8) -> np.ndarray:
    """(k, 4) (E, px, py, pz) of fastjet's ``exclusive_jets(n)`` (kT, E-scheme), sorted by decreasing pT; k <= n."""
    sequence = fastjet.ClusterSequence(_pseudojets(jet), fastjet.JetDefinition(fastjet.kt_algorithm, radius))
    jets = fastjet.sorted_by_pt(sequence.exclusive_jets(n))
    return np.array([[j.E(), j.px(), j.py(), j.pz()] for j in jets]).reshape(-1, 4)


def nsubjettiness_reference(jet: np.ndarray, n: int, radius: float = 0.8, r0: float = 0.8) -> float:
    """τ_n = Σ pT_i min_k ΔR_ik / (Σ pT_i R0), ΔR in (rapidity, φ), β = 1, fastjet's exclusive kT axes."""
    pieces = _pseudojets(jet)
    if not pieces:
        return 0.0
    sequence = fastjet.ClusterSequence(pieces, fastjet.JetDefinition(fastjet.kt_algorithm, radius))
    axes = sequence.exclusive_jets(n)
    pt = np.array([p.pt() for p in pieces])
    dr = np.array([[p.delta_R(a) for a in axes] for p in pieces]).reshape(len(pieces), -1)
    return float(np.sum(pt * dr.min(1)) / (pt.sum() * r0))


# -- Particle Transformer forward pass, weaver-core's structure in float64 numpy --------------------------------
def _erf(x):
    from scipy.special import erf

    return erf(x)


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def _layer_norm(x, p, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(p["scale"], np.float64) + np.asarray(p["bias"], np.float64)


def _linear(x, p):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _mha(query, key, value, p, num_heads, key_padding_mask, attn_mask=None):
    """weaver-core's Attention: packed q/k/v projections, float -inf key padding added to the float attn_mask."""
    tgt, d = query.shape
    src = key.shape[0]
    hd = d // num_heads
    q = _linear(query, p["query"]).reshape(tgt, num_heads, hd).transpose(1, 0, 2)
    k = _linear(key, p["key"]).reshape(src, num_heads, hd).transpose(1, 0, 2)
    v = _linear(value, p["value"]).reshape(src, num_heads, hd).transpose(1, 0, 2)
    mask = np.where(key_padding_mask, -np.inf, 0.0)[None, None, :] * np.ones((num_heads, 1, 1))
    if attn_mask is not None:
        mask = mask + attn_mask
    w = (q * np.sqrt(1.0 / hd)) @ k.transpose(0, 2, 1) + mask
    w = np.exp(w - w.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    out = (w @ v).transpose(1, 0, 2).reshape(tgt, d)
    return _linear(out, p["out_proj"])


def _block(p, x, num_heads, padding_mask, attn_mask=None, x_cls=None):
    """weaver-core's Block.forward (scale_attn, scale_fc, scale_heads, scale_resids on; eval mode)."""
    if x_cls is not None:
        padding_mask = np.concatenate([[False], padding_mask])
        residual = x_cls
        u = _layer_norm(np.concatenate([x_cls, x], 0), p["pre_attn_norm"])
        x = _mha(x_cls, u, u, p["attn"], num_heads, padding_mask)
    else:
        residual = x
        x = _layer_norm(x, p["pre_attn_norm"])
        x = _mha(x, x, x, p["attn"], num_heads, padding_mask, attn_mask)
    tgt, d = x.shape
    x = (x.reshape(tgt, num_heads, d // num_heads) * np.asarray(p["head_scale"])[None, :, None]).reshape(tgt, d)
    x = _layer_norm(x, p["post_attn_norm"]) + residual
    residual = x
    x = _gelu(_linear(_layer_norm(x, p["pre_fc_norm"]), p["fc1"]))
    x = _linear(_layer_norm(x, p["post_fc_norm"]), p["fc2"])
    return x + np.asarray(p["residual_scale"]) * residual


def part_forward_reference(params, x, mask, pairs, num_heads, pair_centre, pair_scale) -> np.ndarray:
    """(N, 2) logits of jaxbench's ParT weights, the network written as weaver-core's ParticleTransformer (eval)
    with its BatchNorms replaced as the jaxbench docstring says; pairs embedded on the real pairs a >= b only
    (the sparse path) and mirrored. Needs at least one real particle per jet (weaver's -inf masks)."""
    params = jax_to_numpy(params)
    out = []
    for xj, mj, uj in zip(np.asarray(x, np.float64), np.asarray(mask), [None] * len(x) if pairs is None else pairs):
        e = params["embed"]
        h = xj * e["input_norm"]["scale"] + e["input_norm"]["bias"]
        i = 0
        while f"linear_{i}" in e:
            h = _gelu(_linear(_layer_norm(h, e[f"norm_{i}"]), e[f"linear_{i}"]))
            i += 1
        h = np.where(mj[:, None], h, 0.0)
        attn_mask = None
        if uj is not None:
            pe = params["pair_embed"]
            n = len(mj)
            a, b = np.tril_indices(n)
            keep = mj[a] & mj[b]
            a, b = a[keep], b[keep]
            u = (np.asarray(uj, np.float64)[a, b] - np.asarray(pair_centre)) / np.asarray(pair_scale)
            u = u * pe["input_norm"]["scale"] + pe["input_norm"]["bias"]
            layers = sum(k.startswith("conv_") for k in pe)
            for k in range(layers):
                u = _linear(u, pe[f"conv_{k}"])
                norm = pe[f"norm_{k}"]
                u = u * norm["scale"] + norm["bias"] if k == layers - 1 else _layer_norm(u, norm)
                u = _gelu(u)
            attn_mask = np.zeros((num_heads, n, n))
            attn_mask[:, a, b] = u.T
            attn_mask[:, b, a] = u.T
        padding = ~mj
        k = 0
        while f"block_{k}" in params:
            h = _block(params[f"block_{k}"], h, num_heads, padding, attn_mask)
            k += 1
        cls = np.asarray(params["cls_token"], np.float64)
        k = 0
        while f"class_block_{k}" in params:
            cls = _block(params[f"class_block_{k}"], h, num_heads, padding, x_cls=cls)
            k += 1
        out.append(_linear(_layer_norm(cls[0], params["norm"]), params["head"]))
    return np.stack(out)


def jax_to_numpy(tree):
    """A nested dict of arrays as float64 numpy."""
    if isinstance(tree, dict):
        return {k: jax_to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree, np.float64)
