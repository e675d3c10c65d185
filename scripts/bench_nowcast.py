"""Nowcast verification throughput: the reference way (pysteps + numpy, one event and lead at a time) vs jaxbench.

Both ways score the same forecast/observed fields (E events x T leads x N x N pixels, mm/h) with the same settings
(pysteps' ">" operator, NaN = no event):

  reference: per event and lead, ``pysteps.verification.det_cat_fct`` CSI per threshold, the neighbourhood CSI
             (scipy ``maximum_filter`` + det_cat_fct), ``spatialscores.fss``, and numpy MAE, active-area MAE of
             the four masks, centre of mass, means and trends;
  jaxbench:  ``jaxbench.kernels.verification.field_metrics`` on all of them at once (jitted; warmed;
             block_until_ready; best of 3).

Usage: python scripts/bench_nowcast.py [--events 64] [--leads 12] [--size 128]
Prints both times, frames per second and the ratio, and the largest CSI / FSS difference between the two ways.
Then the model's inference: ``model.predict`` (evolution network + operator + generative decoder) of the QUICK
preset on ``--model-events`` events, jitted and warmed, in forecast frames per second, beside pysteps' extrapolation
and STEPS (the baselines, one event at a time, their motion estimate included) on the same inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import numpy as np

THRESHOLDS = (16.0, 32.0, 64.0)
NEIGHBOURHOOD = 2
ACTIVE_MMH = 5.0
FSS_SCALE, FSS_MMH = 8, 16.0


def rain_fields(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Correlated log-normal rain (mm/h) with dry areas and storm cores above 64 mm/h."""
    from scipy.ndimage import gaussian_filter

    z = gaussian_filter(rng.normal(size=shape), sigma=(0, 0, 4, 4))
    return np.clip(np.exp(1.5 * z / z.std() + 1.0) - 3.0, 0.0, 128.0).astype(np.float32)


def reference_scores(forecast: np.ndarray, observed: np.ndarray, last_input: np.ndarray) -> dict[str, np.ndarray]:
    """The same scores, frame by frame, with pysteps and numpy (float64 where numpy promotes)."""
    from pysteps.verification.detcatscores import det_cat_fct
    from pysteps.verification.spatialscores import fss
    from scipy.ndimage import maximum_filter

    e, t, h, w = forecast.shape
    out = {k: np.full((e, t), np.nan) for k in ("mae", "com_r", "fss", "trend_forecast", "trend_observed")}
    out |= {f"{p}csi_{x:g}": np.full((e, t), np.nan) for p in ("", "n") for x in THRESHOLDS}
    out |= {f"active_mae_{m}": np.full((e, t), np.nan) for m in ("observed", "predicted", "union", "intersection")}
    rows, cols = np.mgrid[:h, :w]
    # maximum_filter(size=k, origin=-(k // 2)) puts each window's top-left corner at the pixel; the windows
    # inside the field are the [: h - k + 1, : w - k + 1] corner (the kernel's stride-1 'valid' max-pool).
    n = NEIGHBOURHOOD

    def pooled(x):
        return maximum_filter(x, size=n, origin=-(n // 2))[: h - n + 1, : w - n + 1]

    def centroid(x):
        total = x.sum()
        return (np.sum(rows * x) / total, np.sum(cols * x) / total) if total > 0 else (np.nan, np.nan)

    for i in range(e):
        base = np.nanmean(last_input[i])
        for k in range(t):
            f, o = forecast[i, k], observed[i, k]
            pf, po = pooled(f), pooled(o)
            for x in THRESHOLDS:
                out[f"csi_{x:g}"][i, k] = det_cat_fct(f, o, x, scores="CSI")["CSI"]
                out[f"ncsi_{x:g}"][i, k] = det_cat_fct(pf, po, x, scores="CSI")["CSI"]
            out["fss"][i, k] = fss(f, o, FSS_MMH, FSS_SCALE)
            err = np.abs(f - o)
            out["mae"][i, k] = np.nanmean(err)
            a, b = f >= ACTIVE_MMH, o >= ACTIVE_MMH
            for name, mask in (("observed", b), ("predicted", a), ("union", a | b), ("intersection", a & b)):
                out[f"active_mae_{name}"][i, k] = err[mask].mean() if mask.any() else np.nan
            (fy, fx), (oy, ox) = centroid(f), centroid(o)
            out["com_r"][i, k] = np.hypot(fy - oy, fx - ox)
            out["trend_forecast"][i, k] = np.nanmean(f) - base
            out["trend_observed"][i, k] = np.nanmean(o) - base
    return out


def main() -> None:
    """Time both ways and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--leads", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-events", type=int, default=16, help="events of the model timing (0: skip it)")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from jaxbench.kernels import verification

    rng = np.random.default_rng(args.seed)
    shape = (args.events, args.leads, args.size, args.size)
    observed = rain_fields(rng, shape)
    # A forecast that resembles the observation: shifted by a few pixels, noisier.
    forecast = np.roll(observed, (2, 3), axis=(2, 3)) * rng.uniform(0.7, 1.3, size=shape).astype(np.float32)
    last_input = observed[:, 0] * 0.9
    frames = args.events * args.leads

    start = time.perf_counter()
    reference = reference_scores(forecast, observed, last_input)
    reference_s = time.perf_counter() - start

    f, o, x = (jax.device_put(jnp.asarray(a)) for a in (forecast, observed, last_input))
    settings = dict(
        thresholds=THRESHOLDS,
        operator=">",
        nan_policy="no_event",
        neighbourhood=NEIGHBOURHOOD,
        active_threshold=ACTIVE_MMH,
        fss_scale=FSS_SCALE,
        fss_threshold=FSS_MMH,
    )
    start = time.perf_counter()
    ours = jax.block_until_ready(verification.field_metrics(f, o, x, **settings))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        ours = jax.block_until_ready(verification.field_metrics(f, o, x, **settings))
        times.append(time.perf_counter() - start)
    jax_s = min(times)

    fss_name = f"fss_{FSS_MMH:g}_s{FSS_SCALE}"
    diffs = {k: np.nanmax(np.abs(np.asarray(ours[k], float) - reference[k])) for k in reference if k in ours}
    diffs["fss"] = np.nanmax(np.abs(np.asarray(ours[fss_name], float) - reference["fss"]))
    worst = max(diffs, key=diffs.get)

    print(f"nowcast verification: {args.events} events x {args.leads} leads x {args.size}^2 px ({frames} frames)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0]}")
    print(f"{'way':<28}{'seconds':>10}{'frames/s':>12}")
    print(f"{'reference (pysteps+numpy)':<28}{reference_s:>10.3f}{frames / reference_s:>12.0f}")
    print(f"{'jaxbench field_metrics':<28}{jax_s:>10.3f}{frames / jax_s:>12.0f}   (compile {compile_s:.1f} s)")
    print(f"ratio reference / jaxbench: {reference_s / jax_s:.1f}x")
    print(f"largest difference: {worst} {diffs[worst]:.2e} (CSI, FSS: {max(diffs['csi_16'], diffs['fss']):.2e})")
    if args.model_events:
        bench_model(args.model_events)


def bench_model(events: int) -> None:
    """Forecast frames per second of the QUICK model (untrained weights: the cost does not depend on them) and of
    the pysteps baselines on the same generated events."""
    import jax

    from jaxbench.tasks.nowcast import baselines, config, generator, model

    cfg = config.QUICK
    d = cfg.data
    inputs = generator.generate_events(jax.random.key(0), events, d, cfg.simulator).frames[:, : d.n_inputs]
    params = model.init(jax.random.key(1), cfg.model, d)
    predict = jax.jit(lambda p, x, k: model.predict(p, cfg.model, d, x, k).frames)
    start = time.perf_counter()
    jax.block_until_ready(predict(params, inputs, jax.random.key(2)))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(predict(params, inputs, jax.random.key(2)))
        times.append(time.perf_counter() - start)
    frames = events * d.n_targets
    print(f"\nforecasts: {events} events x {d.n_targets} frames of {d.size}^2 px (QUICK preset)")
    print(f"{'forecaster':<28}{'seconds':>10}{'frames/s':>12}")
    print(
        f"{'jaxbench model.predict':<28}{min(times):>10.3f}{frames / min(times):>12.0f}   (compile {compile_s:.1f} s)"
    )
    settings = dataclasses.replace(cfg.baselines, workers=1)
    x = np.asarray(inputs)
    for name in ("extrapolation", "steps"):
        start = time.perf_counter()
        for i in range(events):
            baselines.forecast_event(jax.random.key(i), x[i], d.n_targets, name, settings, d)
        seconds = time.perf_counter() - start
        label = f"pysteps {name}" + (f" ({settings.ensemble} members)" if name == "steps" else "")
        print(f"{label:<28}{seconds:>10.3f}{frames / seconds:>12.0f}")


if __name__ == "__main__":
    main()
