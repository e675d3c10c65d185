"""Particle Transformer: weaver-core's forward pass in numpy, the published size, masks, symmetry, dropout.

The float64 reference (tests/reference/jets_reference.py) is the network written as weaver-core's
``ParticleTransformer`` / ``Block`` / ``Attention`` (-inf key padding, sparse pair embedding mirrored).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference.jets_reference import part_forward_reference, random_jets

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.tasks.jets import part

CONFIG = part.TINY
JETS = random_jets(np.random.default_rng(3), 6, 40, max_real=36, min_particles=2)  # some exceed 32 slots


def _perturbed(params, seed=0):
    # Off the initial values (unit scales, zero biases) so every weight is exercised by the comparison.
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda w: w + 0.1 * rng.normal(size=w.shape).astype(np.float32), params)


INITIAL = part.init(jax.random.key(0), CONFIG)
PARAMS = _perturbed(INITIAL)
INPUTS = part.inputs(JETS, CONFIG)


def _expected_count(c: part.PartConfig) -> int:
    """Weights of the published architecture, layer by layer (BatchNorm and LayerNorm: 2 per channel)."""
    d, h, f = c.embed_dim, c.num_heads, c.ffn_ratio * c.embed_dim
    total, width = 2 * c.input_dim, c.input_dim
    for dim in c.embed_dims:
        total += 2 * width + width * dim + dim
        width = dim
    if c.use_pairs:
        total, width = total + 8, 4
        for dim in (*c.pair_embed_dims, h):
            total += width * dim + dim + 2 * dim
            width = dim
    block = 3 * 2 * d + 4 * (d * d + d) + h + d * f + f + 2 * f + f * d + d + d
    return total + (c.num_particle_blocks + c.num_class_blocks) * block + d + 2 * d + 2 * d + 2


@pytest.mark.parametrize("name", sorted(part.CONFIGS))
def test_parameter_counts_follow_the_architecture(name):
    config = part.CONFIGS[name]
    shapes = jax.eval_shape(lambda key: part.init(key, config), jax.random.key(0))
    assert part.num_parameters(shapes) == _expected_count(config)
    if name == "published":
        assert part.num_parameters(shapes) == 2_141_134  # the paper's 2.14 M


def test_forward_matches_weaver_core_structure():
    x, mask, pairs = INPUTS
    got = np.asarray(part.apply(PARAMS, CONFIG, x, mask, pairs))
    ref = part_forward_reference(
        PARAMS, x, mask, np.asarray(pairs), CONFIG.num_heads, part.PAIR_CENTRE, part.PAIR_SCALE
    )
    np.testing.assert_allclose(got, ref, atol=2e-5)  # float32 through 3 blocks of O(1) activations


def test_raw_variant_has_no_pairs_and_matches_the_reference():
    config = part.variant_config(CONFIG, "raw")
    shapes = jax.eval_shape(lambda key: part.init(key, config), jax.random.key(1))  # no init compile
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda s: (0.3 * rng.normal(size=s.shape)).astype(np.float32), shapes)
    x, mask, pairs = part.inputs(JETS, config, "raw")
    assert pairs is None and x.shape == (6, CONFIG.max_particles, 4)
    got = np.asarray(part.apply(params, config, x, mask))
    np.testing.assert_allclose(
        got, part_forward_reference(params, x, mask, None, config.num_heads, None, None), atol=2e-5
    )


def test_padded_slots_are_ignored_and_particles_are_unordered():
    x, mask, pairs = INPUTS
    logits = part.apply(PARAMS, CONFIG, x, mask, pairs)
    rng = np.random.default_rng(0)
    pad = ~np.asarray(mask)
    x_junk = np.where(pad[..., None], rng.normal(size=x.shape) * 10, x).astype(np.float32)
    pair_pad = pad[:, :, None] | pad[:, None, :]
    pairs_junk = np.where(pair_pad[..., None], rng.normal(size=pairs.shape) * 10, pairs).astype(np.float32)
    np.testing.assert_allclose(part.apply(PARAMS, CONFIG, x_junk, mask, pairs_junk), logits, atol=1e-5)
    order = rng.permutation(x.shape[1])
    permuted = part.apply(PARAMS, CONFIG, x[:, order], mask[:, order], pairs[:, order][:, :, order])
    np.testing.assert_allclose(permuted, logits, atol=1e-5)
    # the pair bias reaches the logits
    bumped = np.where(pair_pad[..., None], pairs, np.asarray(pairs) + np.array([0, 0, 3.0, 0], np.float32))
    assert np.abs(np.asarray(part.apply(PARAMS, CONFIG, x, mask, bumped)) - np.asarray(logits)).max() > 1e-2


def test_apply_compiles_once_for_new_values():
    x, mask, pairs = INPUTS
    part.apply(PARAMS, CONFIG, x, mask, pairs)
    before = part.apply._cache_size()
    part.apply(PARAMS, CONFIG, x + 1.0, mask, pairs * 0.5)
    assert part.apply._cache_size() == before


def test_empty_jet_gives_finite_logits_and_gradients():
    x, mask, pairs = (np.array(a) for a in INPUTS)
    x[0], mask[0], pairs[0] = 0.0, False, 0.0  # a jet without particles
    labels = jnp.array([1, 0, 1, 0, 1, 0])

    @jax.jit
    def loss(params):
        logits = part.apply(params, CONFIG, x, mask, pairs)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    value, grads = jax.value_and_grad(loss)(PARAMS)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert np.abs(np.asarray(grads["block_0"]["fc1"]["kernel"])).max() > 0


def test_dropout_keys_give_reproducible_different_draws():
    config = dataclasses.replace(CONFIG, dropout=0.2)
    x, mask, pairs = INPUTS
    one, two, again = (np.asarray(part.apply(PARAMS, config, x, mask, pairs, key=jax.random.key(k))) for k in (1, 2, 1))
    assert np.abs(one - two).max() > 1e-3
    np.testing.assert_array_equal(one, again)


def test_initialisation_follows_weaver_core():
    params = INITIAL  # d = 32, 2 particle blocks
    # fix_init: out_proj and fc2 of particle block l are scaled by 1/sqrt(2 l)
    for name in ("fc2",):
        std = [float(jnp.std(params[f"block_{i}"][name]["kernel"])) for i in range(2)]
        assert std[0] / std[1] == pytest.approx(np.sqrt(2), rel=0.1)
    xavier = np.sqrt(2.0 / (32 + 32))
    assert float(jnp.std(params["block_0"]["attn"]["query"]["kernel"])) == pytest.approx(xavier, rel=0.1)
    assert float(jnp.std(params["block_0"]["attn"]["out_proj"]["kernel"])) == pytest.approx(
        xavier / np.sqrt(2), rel=0.1
    )
    assert float(jnp.std(params["cls_token"])) == pytest.approx(0.02, rel=0.3)
    assert np.all(np.asarray(params["block_0"]["head_scale"]) == 1)


def test_config_and_input_errors_name_the_fix():
    with pytest.raises(ConfigError, match="divisible"):
        part.PartConfig(embed_dims=(30,), num_heads=4)
    with pytest.raises(ConfigError, match="dropout"):
        part.PartConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="unknown"):
        part.variant_config(CONFIG, "pixels")
    with pytest.raises(ConfigError, match="variant_config"):
        part.inputs(JETS, CONFIG, "raw")
    x, mask, pairs = INPUTS
    with pytest.raises(ConfigError, match="use_pairs"):
        part.apply(PARAMS, CONFIG, x, mask)
    with pytest.raises(DataFormatError, match="input_dim"):
        part.apply(PARAMS, CONFIG, x[..., :4], mask, pairs)
