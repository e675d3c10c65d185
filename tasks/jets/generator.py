"""Embedded jet generator: Pythia 8 at 14 TeV, a calorimeter-cell detector response and FastJet anti-kT R = 0.8.

What it makes follows TopLandscape (see ``schema.py``): signal is tt̄ production (``Top:gg2ttbar``,
``Top:qqbar2ttbar``) with both W bosons forced to quarks (``24:onIfAny = 1 2 3 4 5``), background is QCD dijets
(``HardQCD:all``); no multi-parton interactions, no pile-up. The hard process is generated in a p̂T window
``[jet_lo - 50, jet_hi + 100]`` GeV (:func:`pthat_window`): jets lose pT to final-state radiation out of the
cone more often than they gain it, so the window reaches further up than down; at 550-650 GeV it is 500-750.

Detector (:class:`Detector`, :func:`detector_response`): a stand-in for Delphes' energy-flow objects. Visible
final-state particles (``isFinal() and isVisible()``: no neutrinos) within |η| < 5 are summed per cell of an
η-φ grid of 0.025 x 2π/251 (≈ 0.025, the ATLAS electromagnetic calorimeter's granularity); each cell's energy
is smeared by a Gaussian of σ/E = 50 %/√E ⊕ 5 % (a hadronic calorimeter's resolution) and cells below 1 GeV
are dropped; a cell becomes a massless four-vector pointing at the cell centre. Charged tracks are not treated
separately, so constituents are coarser in angle and energy than Delphes' track-based flow objects.

Jets: every anti-kT R = 0.8 jet of the event (clustered from the cells) with jet_lo <= pT <= jet_hi GeV and
|η| < eta_max is kept, so one event can give two jets. A top jet must contain a top and its three decay
quarks: the last copy of the top, its quark daughter (b) and the two quark daughters of the last copy of its
W all within ΔR < 0.8 (η-φ) of the jet axis; that top's four-momentum is ``truth_p4``. QCD jets are not
matched (truth zeros). Constituents are the jet's cells ordered by decreasing pT, at most ``max_particles``,
zero-padded, (E, px, py, pz) float32 GeV as :class:`~.schema.Jets`.

Randomness: one Pythia seed per call of :func:`generate_jets` (``Random:seed``, 1..900,000,000); the
smearing uses ``numpy.random.default_rng(seed)`` with the same seed, so a seed fixes the jets bit for bit.
:func:`generate_sample` splits the work into chunks of fixed size with seeds drawn from the jax key, runs them
in spawned processes and concatenates them in chunk order: the same key gives the same jets for any number of
workers. :func:`cached` stores a sample as zarr arrays with a datacard.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# jax and jaxbench.records (tensorstore) are imported where they are used: spawned workers run only
# generate_jets and start in a fraction of the time without them.
from jaxbench import progress
from jaxbench.errors import ConfigError

from .schema import MAX_PARTICLES, Jets, concatenate, take

#: Bumped whenever the generated jets change for the same settings (invalidates caches).
GENERATOR_VERSION = 1
PROCESSES = ("top", "qcd")
#: Largest Pythia seed (``Random:seed`` accepts 0..900,000,000; 0 means "from the clock", so seeds start at 1).
MAX_PYTHIA_SEED = 900_000_000
JET_RADIUS = 0.8
#: Jets per chunk of :func:`generate_sample` (part of the result: seeds are drawn per chunk).
CHUNK_SIZE = 250
_LOG = logging.getLogger(__name__)
_FIELDS = Jets._fields
_BANNER_SHOWN = False  # FastJet's banner has been sent to /dev/null in this process

#: A jax.random key, its uint32 key data, or an integer seed.
KeyLike = Any


# -- settings ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Detector:
    """A calorimeter-cell response: η-φ cells, Gaussian energy smearing σ/E = a/√E ⊕ b, an energy threshold.

    cell_size: η width of a cell; the φ width is 2π / round(2π / cell_size). eta_max: |η| acceptance.
    stochastic (a, GeV^½) and constant (b): the resolution terms (both 0: no smearing).
    threshold_gev: cells whose smeared energy is below it are dropped (GeV).
    """

    cell_size: float = 0.025
    eta_max: float = 5.0
    stochastic: float = 0.5
    constant: float = 0.05
    threshold_gev: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.cell_size < 1.0:
            raise ConfigError(f"Detector.cell_size must be in (0, 1); got {self.cell_size}.")
        if not self.eta_max > 0.0:
            raise ConfigError(f"Detector.eta_max must be positive; got {self.eta_max}.")
        if self.stochastic < 0.0 or self.constant < 0.0 or self.threshold_gev < 0.0:
            raise ConfigError(
                f"Detector.stochastic, constant and threshold_gev must be >= 0; got {self.stochastic}, "
                f"{self.constant}, {self.threshold_gev}."
            )

    @property
    def n_phi(self) -> int:
        return int(round(2 * math.pi / self.cell_size))

    @property
    def phi_size(self) -> float:
        return 2 * math.pi / self.n_phi


def pthat_window(pt_range: tuple[float, float], margin: tuple[float, float] = (50.0, 100.0)) -> tuple[float, float]:
    """The hard process's p̂T window for a jet window: (max(lo - margin[0], 20), hi + margin[1]) GeV."""
    lo, hi = pt_range
    return max(float(lo) - margin[0], 20.0), float(hi) + margin[1]


def pythia_settings(seed: int, process: str, pt_range: tuple[float, float]) -> list[str]:
    """The Pythia ``readString`` lines of one run."""
    if process not in PROCESSES:
        raise ConfigError(f"process must be one of {PROCESSES}; got {process!r}.")
    pthat_lo, pthat_hi = pthat_window(pt_range)
    physics = (
        ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
        if process == "top"
        else ["HardQCD:all = on"]
    )
    return [
        "Beams:eCM = 14000.",
        *physics,
        f"PhaseSpace:pTHatMin = {pthat_lo:.6g}",
        f"PhaseSpace:pTHatMax = {pthat_hi:.6g}",
        "PartonLevel:MPI = off",
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Next:numberShowInfo = 0",
        "Next:numberShowProcess = 0",
        "Next:numberShowEvent = 0",
        "Init:showChangedSettings = off",
        "Init:showChangedParticleData = off",
        "Init:showProcesses = off",
        "Random:setSeed = on",
        f"Random:seed = {int(seed)}",
    ]


def _check_window(pt_range: Sequence[float], eta_max: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in pt_range)
    if not 0.0 < lo < hi:
        raise ConfigError(f"pt_range must be (lo, hi) GeV with 0 < lo < hi; got {tuple(pt_range)}.")
    if not eta_max > 0.0:
        raise ConfigError(f"eta_max must be positive; got {eta_max}.")
    return lo, hi


# -- detector ------------------------------------------------------------------------------------------
def detector_response(rng: np.random.Generator, p4: np.ndarray, detector: Detector = Detector()) -> np.ndarray:
    """Calorimeter cells of particles. Shapes: p4 (n, 4) (E, px, py, pz) GeV -> (m, 4) massless cells.

    Particles outside |η| < eta_max are lost; energies in one cell add up; a cell's energy E is smeared to
    E + σ z (z standard normal, drawn in order of cell index) with σ² = a² E + b² E², and kept if it is at
    least threshold_gev; the cell points at its centre (η_c, φ_c), η_c = -eta_max + (i + ½) cell_size.
    """
    p4 = np.asarray(p4, np.float64).reshape(-1, 4)
    energy, px, py, pz = p4.T
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    inside = np.isfinite(eta) & (np.abs(eta) < detector.eta_max) & (energy > 0)
    ieta = np.floor((eta[inside] + detector.eta_max) / detector.cell_size).astype(np.int64)
    iphi = np.floor((phi[inside] + math.pi) / detector.phi_size).astype(np.int64) % detector.n_phi
    cells, inverse = np.unique(ieta * detector.n_phi + iphi, return_inverse=True)
    cell_energy = np.bincount(inverse.ravel(), weights=energy[inside], minlength=cells.size)
    sigma = np.sqrt(detector.stochastic**2 * cell_energy + detector.constant**2 * cell_energy**2)
    smeared = cell_energy + sigma * rng.standard_normal(cells.size)
    keep = smeared >= max(detector.threshold_gev, 1e-9)
    cells, smeared = cells[keep], smeared[keep]
    eta_c = -detector.eta_max + (cells // detector.n_phi + 0.5) * detector.cell_size
    phi_c = -math.pi + (cells % detector.n_phi + 0.5) * detector.phi_size
    pt_c = smeared / np.cosh(eta_c)
    return np.stack([smeared, pt_c * np.cos(phi_c), pt_c * np.sin(phi_c), pt_c * np.sinh(eta_c)], axis=1)


# -- one event -------------------------------------------------------------------------------------------
class _Event(NamedTuple):
    visible: np.ndarray  # (n, 4) E, px, py, pz of visible final-state particles
    tops: list[tuple[np.ndarray, np.ndarray]]  # per hadronic top: its (4,) four-momentum, (3, 4) decay quarks


def _p4(particle) -> tuple[float, float, float, float]:
    return particle.e(), particle.px(), particle.py(), particle.pz()


def _read_event(event, with_tops: bool) -> _Event:
    """The visible final state and (with_tops) each last-copy top with its b and the W's two quarks."""
    visible, tops = [], []
    for i, particle in enumerate(event.particles()):  # copies: fast to read, but without the event record
        if particle.isFinal():
            if particle.isVisible():
                visible.append(_p4(particle))
        elif with_tops and particle.idAbs() == 6 and event[i].iBotCopyId() == i:
            particle, quarks, w_index = event[i], [], None
            for d in particle.daughterList():
                daughter = event[d]
                if daughter.idAbs() == 24:
                    w_index = daughter.iBotCopyId()
                elif 1 <= daughter.idAbs() <= 5:
                    quarks.append(_p4(daughter))
            if w_index is not None:
                quarks += [_p4(event[d]) for d in event[w_index].daughterList() if 1 <= event[d].idAbs() <= 5]
            if len(quarks) == 3:
                tops.append((np.array(_p4(particle)), np.array(quarks)))
    return _Event(np.array(visible, np.float64).reshape(-1, 4), tops)


def _eta_phi(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p4 = np.asarray(p4, np.float64)
    return np.arcsinh(p4[..., 3] / np.hypot(p4[..., 1], p4[..., 2])), np.arctan2(p4[..., 2], p4[..., 1])


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """η-φ distance, φ difference wrapped into [-π, π)."""
    dphi = (np.asarray(phi1) - np.asarray(phi2) + math.pi) % (2 * math.pi) - math.pi
    return np.hypot(np.asarray(eta1) - np.asarray(eta2), dphi)


def _matched_top(jet_eta: float, jet_phi: float, tops) -> np.ndarray | None:
    """The closest top whose four-momentum and three decay quarks all lie within ΔR < 0.8 of the jet."""
    best, best_dr = None, math.inf
    for top, quarks in tops:
        eta, phi = _eta_phi(np.concatenate([top[None], quarks]))
        dr = delta_r(eta, phi, jet_eta, jet_phi)
        if np.all(dr < JET_RADIUS) and dr[0] < best_dr:
            best, best_dr = top, dr[0]
    return best


def _silence_fastjet_banner(fastjet) -> None:
    """Lets FastJet print its once-per-process banner into /dev/null (it writes to C++ stdout)."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        one = [fastjet.PseudoJet(1.0, 0.0, 0.0, 1.0)]
        fastjet.ClusterSequence(one, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_RADIUS))
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _BANNER_SHOWN = True


def _jets_of_event(
    cells: np.ndarray, lo: float, hi: float, eta_max: float, jet_definition, fastjet, energy_range=None
) -> list:
    """The jets in the window (and with an energy in ``energy_range`` GeV, [low, high), if given): (constituent
    indices into cells, jet eta, jet phi)."""
    particles = []
    for i, (e, px, py, pz) in enumerate(cells):
        particle = fastjet.PseudoJet(px, py, pz, e)
        particle.set_user_index(i)
        particles.append(particle)
    sequence = fastjet.ClusterSequence(particles, jet_definition)
    found = []
    for jet in sequence.inclusive_jets(lo):
        in_energy = energy_range is None or energy_range[0] <= jet.e() < energy_range[1]
        if jet.perp() <= hi and abs(jet.eta()) < eta_max and in_energy:
            found.append(([c.user_index() for c in jet.constituents()], jet.eta(), jet.phi_std()))
    return found


def _constituents(cells: np.ndarray, max_particles: int) -> np.ndarray:
    """(max_particles, 4) float32: cells by decreasing pT, the first max_particles, zero-padded."""
    order = np.argsort(-np.hypot(cells[:, 1], cells[:, 2]), kind="stable")[:max_particles]
    out = np.zeros((max_particles, 4), np.float32)
    out[: order.size] = cells[order]
    return out


# -- one process -----------------------------------------------------------------------------------------
class RunInfo(NamedTuple):
    """What one run of :func:`generate_jets` did: Pythia seed, events generated, jets kept, CPU seconds."""

    seed: int
    process: str
    events: int
    jets: int
    seconds: float


def generate_jets(
    seed: int,
    process: str,
    n_jets: int,
    pt_range: tuple[float, float] = (550.0, 650.0),
    eta_max: float = 2.0,
    detector: Detector = Detector(),
    max_particles: int = MAX_PARTICLES,
    progress: Callable[[int], None] | None = None,
    *,
    match: bool = True,
    return_info: bool = False,
    energy_range: tuple[float, float] | None = None,
) -> Jets | tuple[Jets, RunInfo]:
    """``n_jets`` jets of ``process`` ("top" label 1 or "qcd" label 0) from one Pythia run seeded with ``seed``.

    Jets in order of generation, ttv -1. ``progress(n_accepted)`` is called after each event that gave jets.
    ``energy_range`` (GeV, [low, high)) keeps only jets of that energy (the jet-energy study's bins).
    ``match=False`` keeps top jets without the truth matching (for timing; truth_p4 then zero). Measured on one
    core (CPU time, 1000 jets): 118 matched top / 171 QCD jets/s at 550-650 GeV (191 top jets/s unmatched), 213 /
    233 at 2204-2440 GeV (230 unmatched); Pythia's ``next()`` is about a third of it, reading its event record,
    the cells and FastJet the rest.
    """
    import fastjet
    import pythia8mc

    if int(seed) != seed or not 1 <= seed <= MAX_PYTHIA_SEED:
        raise ConfigError(f"seed must be an integer in 1..{MAX_PYTHIA_SEED}; got {seed!r}.")
    if int(n_jets) != n_jets or n_jets < 0:
        raise ConfigError(f"n_jets must be a non-negative integer; got {n_jets!r}.")
    if int(max_particles) != max_particles or max_particles < 1:
        raise ConfigError(f"max_particles must be a positive integer; got {max_particles!r}.")
    lo, hi = _check_window(pt_range, eta_max)
    start = time.process_time()
    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(seed, process, (lo, hi)):
        if not pythia.readString(line):
            raise ConfigError(f"Pythia {_package_version('pythia8mc')} rejected the setting {line!r}.")
    if not pythia.init():
        raise ConfigError(f"Pythia failed to initialise {process} at pT {lo}-{hi} GeV; check the p̂T window.")
    rng = np.random.default_rng(int(seed))
    jet_definition = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_RADIUS)
    _silence_fastjet_banner(fastjet)
    signal = process == "top"
    p4s, truths = [], []
    events, max_events = 0, 2000 * n_jets + 1000
    while len(p4s) < n_jets:
        if events >= max_events:
            raise ConfigError(
                f"{events} {process} events gave only {len(p4s)} jets in pT {lo}-{hi} GeV, |eta| < {eta_max}; "
                "widen the window."
            )
        events += 1
        if not pythia.next():
            continue
        event = _read_event(pythia.event, with_tops=signal and match)
        cells = detector_response(rng, event.visible, detector)
        before = len(p4s)
        found = _jets_of_event(cells, lo, hi, eta_max, jet_definition, fastjet, energy_range)
        for index, jet_eta, jet_phi in found:
            truth = np.zeros(4)
            if signal and match:
                truth = _matched_top(jet_eta, jet_phi, event.tops)
                if truth is None:
                    continue
            p4s.append(_constituents(cells[index], max_particles))
            truths.append(truth)
        if progress is not None and len(p4s) > before:
            progress(min(len(p4s), n_jets))
    n = int(n_jets)
    jets = Jets(
        np.array(p4s[:n], np.float32).reshape(n, max_particles, 4),
        np.full(n, int(signal), np.int32),
        np.array(truths[:n], np.float32).reshape(n, 4),
        np.full(n, -1, np.int32),
    )
    info = RunInfo(int(seed), process, events, n, time.process_time() - start)
    return (jets, info) if return_info else jets


# -- seeds, chunks and workers -----------------------------------------------------------------------------
class _Chunk(NamedTuple):
    seed: int
    process: str
    n_jets: int
    pt_range: tuple[float, float]
    eta_max: float
    detector: Detector
    max_particles: int
    energy_range: tuple[float, float] | None = None


def _as_key(key):
    import jax

    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    if not jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        return jax.random.wrap_key_data(np.asarray(key, np.uint32))
    if key.shape != ():
        raise ConfigError(f"expected one jax key, got a batch of shape {key.shape}.")
    return key


def key_seeds(key: KeyLike, stream: int, n: int) -> list[int]:
    """Pythia seeds (1..MAX_PYTHIA_SEED) of chunks 0..n-1 of stream ``stream``: chunk c's comes from
    ``fold_in(fold_in(key, stream), c)``, so it does not depend on n."""
    padded = np.arange(-(-n // 64) * 64, dtype=np.uint32)  # blocks of 64: one compilation for up to 64 chunks
    return [int(s) for s in np.asarray(_seed_drawer()(_as_key(key), stream, padded))[:n]]


@functools.cache
def _seed_drawer():
    """Jitted (key, stream, chunks (n,) uint32) -> (n,) int32 seeds."""
    import jax

    def draw(key, stream, chunks):
        base = jax.random.fold_in(key, stream)
        one = lambda c: jax.random.randint(jax.random.fold_in(base, c), (), 1, MAX_PYTHIA_SEED + 1)  # noqa: E731
        return jax.vmap(one)(chunks)

    return jax.jit(draw)


def _distinct(seeds: list[int]) -> list[int]:
    """The seeds with repeats moved to the next unused value (deterministic; repeats are rare)."""
    seen, out = set(), []
    for seed in seeds:
        while seed in seen:
            seed = seed % MAX_PYTHIA_SEED + 1
        seen.add(seed)
        out.append(seed)
    return out


def _chunk_sizes(n: int, chunk_size: int) -> list[int]:
    return [min(chunk_size, n - start) for start in range(0, n, chunk_size)]


def _run_chunk(chunk: _Chunk) -> tuple[Jets, RunInfo]:
    return generate_jets(
        chunk.seed,
        chunk.process,
        chunk.n_jets,
        chunk.pt_range,
        chunk.eta_max,
        chunk.detector,
        chunk.max_particles,
        return_info=True,
        energy_range=chunk.energy_range,
    )


def _run_chunks(chunks: list[_Chunk], workers: int, description: str) -> list[tuple[Jets, RunInfo]]:
    """Every chunk's jets, in chunk order; in this process for workers <= 1, else in spawned processes."""
    total = sum(chunk.n_jets for chunk in chunks)
    with progress.bar(description, total) as advance:
        if workers <= 1 or len(chunks) <= 1:
            results = []
            for chunk in chunks:
                done = [0]

                def step(n_accepted: int, done=done) -> None:
                    advance(n_accepted - done[0])
                    done[0] = n_accepted

                results.append(
                    generate_jets(
                        *chunk[:3],
                        chunk.pt_range,
                        chunk.eta_max,
                        chunk.detector,
                        chunk.max_particles,
                        progress=step,
                        return_info=True,
                        energy_range=chunk.energy_range,
                    )
                )
            return results
        context = multiprocessing.get_context("spawn")  # fork after JAX has started threads is unsafe
        results: list = [None] * len(chunks)
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
            futures = {pool.submit(_run_chunk, chunk): i for i, chunk in enumerate(chunks)}
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                advance(chunks[i].n_jets)
        return results


def _chunks_of(seeds_key, n_per_class, pt_range, eta_max, detector, max_particles, chunk_size, stream0=0):
    """The chunks of both classes (top then QCD) for one pT window; streams stream0 (top), stream0 + 1 (qcd)."""
    sizes = _chunk_sizes(int(n_per_class), int(chunk_size))
    window = tuple(float(v) for v in pt_range)
    chunks = []
    for offset, process in enumerate(PROCESSES):
        for seed, size in zip(key_seeds(seeds_key, stream0 + offset, len(sizes)), sizes):
            chunks.append(_Chunk(seed, process, size, window, eta_max, detector, max_particles))
    return chunks


def _summary(chunks: list[_Chunk], infos: list[RunInfo]) -> dict[str, Any]:
    """Seeds, counts, acceptance and per-core speed of a sample, per process."""
    per_process = {}
    for process in PROCESSES:
        mine = [info for info in infos if info.process == process]
        events = sum(info.events for info in mine)
        jets = sum(info.jets for info in mine)
        seconds = sum(info.seconds for info in mine)
        per_process[process] = {
            "seeds": [info.seed for info in mine],
            "events": events,
            "jets": jets,
            "jets_per_event": jets / events if events else None,
            "cpu_seconds": seconds,
            "jets_per_cpu_second": jets / seconds if seconds else None,
        }
    first = chunks[0] if chunks else _Chunk(1, "top", 0, (550.0, 650.0), 2.0, Detector(), MAX_PARTICLES)
    settings = {
        "pythia": {p: pythia_settings(1, p, first.pt_range)[:-1] + ["Random:seed = <per chunk>"] for p in PROCESSES},
        "pthat_window": "[jet_lo - 50, jet_hi + 100] GeV per pT window",
        "jets": f"FastJet anti-kT R = {JET_RADIUS} on detector cells, |eta| < {first.eta_max}",
        "top_matching": "top, its b and the W's two quarks within dR < 0.8 (eta-phi) of the jet axis",
        "detector": dataclasses.asdict(first.detector),
        "max_particles": first.max_particles,
        "smearing_rng": "numpy.random.default_rng(chunk seed)",
    }
    return {
        "settings": settings,
        "chunks": len(chunks),
        "chunk_sizes": sorted({c.n_jets for c in chunks}),
        "chunk_pt_ranges": sorted({c.pt_range for c in chunks}),
        "processes": per_process,
    }


def _check_sample(n_per_class: int, chunk_size: int, workers: int) -> None:
    if int(n_per_class) != n_per_class or n_per_class < 0:
        raise ConfigError(f"n_per_class must be a non-negative integer; got {n_per_class!r}.")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer; got {chunk_size!r}.")
    if int(workers) != workers or workers < 1:
        raise ConfigError(f"workers must be a positive integer; got {workers!r}.")


def _shuffled(key, jets: Jets) -> Jets:
    import jax

    return take(jets, np.asarray(jax.random.permutation(key, jets.num_jets)))


def _run_shuffled(
    chunks: list[_Chunk], workers: int, description: str, shuffle_key, return_info: bool
) -> Jets | tuple[Jets, dict]:
    """The chunks (their seeds made distinct) run and joined in chunk order, then shuffled with ``shuffle_key``."""
    chunks = [c._replace(seed=s) for c, s in zip(chunks, _distinct([c.seed for c in chunks]))]
    results = _run_chunks(chunks, workers, description)
    jets = _shuffled(shuffle_key, concatenate([r[0] for r in results]))
    return (jets, _summary(chunks, [r[1] for r in results])) if return_info else jets


def generate_sample(
    key: KeyLike,
    n_per_class: int,
    pt_range: tuple[float, float] = (550.0, 650.0),
    workers: int = 2,
    eta_max: float = 2.0,
    detector: Detector = Detector(),
    max_particles: int = MAX_PARTICLES,
    chunk_size: int = CHUNK_SIZE,
    *,
    return_info: bool = False,
) -> Jets | tuple[Jets, dict]:
    """``n_per_class`` top (label 1) and QCD (label 0) jets, shuffled with ``key``; ttv -1.

    Chunks of ``chunk_size`` jets get Pythia seeds from ``key`` (:func:`key_seeds`, distinct) and run in up to
    ``workers`` spawned processes; the result depends on the key and chunk_size, not on workers. Spawned
    workers import the caller's ``__main__``: call this from under ``if __name__ == "__main__":`` in scripts.
    ``return_info`` adds a dict of seeds, counts, acceptance and speed (for the datacard).
    """
    import jax

    _check_sample(n_per_class, chunk_size, workers)
    _check_window(pt_range, eta_max)
    seeds_key, shuffle_key = jax.random.split(_as_key(key))
    chunks = _chunks_of(seeds_key, n_per_class, pt_range, eta_max, detector, max_particles, chunk_size)
    lo, hi = pt_range
    return _run_shuffled(chunks, workers, f"Pythia jets {lo:g}-{hi:g} GeV", shuffle_key, return_info)


def generate_energy_binned(
    key: KeyLike,
    n_per_class_per_bin: int,
    energy_edges: Sequence[float],
    pt_range: tuple[float, float] = (550.0, 650.0),
    workers: int = 2,
    eta_max: float = 2.0,
    detector: Detector = Detector(),
    max_particles: int = MAX_PARTICLES,
    chunk_size: int = CHUNK_SIZE,
    *,
    return_info: bool = False,
) -> Jets | tuple[Jets, dict]:
    """An energy-enriched sample in the published selection: ``n_per_class_per_bin`` top and QCD jets with pT in
    ``pt_range`` and a jet energy in each bin [edges[i], edges[i+1]) GeV (high energies are forward jets:
    cosh(eta) = E / pT), all bins shuffled together with ``key``. The jet-energy study tests on it."""
    import jax

    _check_sample(n_per_class_per_bin, chunk_size, workers)
    _check_window(pt_range, eta_max)
    edges = [float(e) for e in energy_edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ConfigError(f"energy_edges must be at least two increasing energies (GeV); got {edges}.")
    reach = float(pt_range[1]) * float(np.cosh(eta_max))
    if edges[0] < float(pt_range[0]) or edges[-1] > reach + 1e-6:
        raise ConfigError(
            f"energy_edges {edges[0]:g}-{edges[-1]:g} GeV leave the reach of pT {pt_range} GeV and |eta| < {eta_max} "
            f"({pt_range[0]:g}-{reach:.0f} GeV); set studies.energy_edges_gev inside it."
        )
    seeds_key, shuffle_key = jax.random.split(_as_key(key))
    chunks = []
    for i, window in enumerate(zip(edges, edges[1:])):
        chunks += [
            c._replace(energy_range=window)
            for c in _chunks_of(
                seeds_key, n_per_class_per_bin, pt_range, eta_max, detector, max_particles, chunk_size, stream0=2 * i
            )
        ]
    description = f"Pythia jets, energy {edges[0]:g}-{edges[-1]:g} GeV"
    return _run_shuffled(chunks, workers, description, shuffle_key, return_info)


def cached_sample(
    cache_dir: str | Path,
    key: KeyLike,
    n_per_class: int,
    *,
    pt_range: tuple[float, float] = (550.0, 650.0),
    eta_max: float = 2.0,
    workers: int = 2,
    energy_edges: Sequence[float] | None = None,
    detector: Detector = Detector(),
    max_particles: int = MAX_PARTICLES,
) -> Jets:
    """:func:`generate_sample` (or, with ``energy_edges``, :func:`generate_energy_binned` with ``n_per_class`` per
    bin) through the cache: what the task calls."""
    name = "energy_binned" if energy_edges is not None else "sample"
    params = sample_params(name, key, n_per_class, pt_range, None, eta_max, detector, max_particles)
    params["energy_edges"] = None if energy_edges is None else [float(e) for e in energy_edges]
    options = dict(workers=workers, eta_max=eta_max, detector=detector, max_particles=max_particles, return_info=True)
    if energy_edges is None:
        make = lambda: generate_sample(key, n_per_class, pt_range, **options)  # noqa: E731
    else:
        make = lambda: generate_energy_binned(key, n_per_class, energy_edges, pt_range, **options)  # noqa: E731
    return cached(cache_dir, params, make)


# -- cache --------------------------------------------------------------------------------------------------
def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def default_cache_dir() -> Path:
    """``$JAXBENCH_CACHE/jets`` or ``~/.cache/jaxbench/jets``."""
    return Path(os.environ.get("JAXBENCH_CACHE") or Path.home() / ".cache" / "jaxbench") / "jets"


def sample_params(
    name: str,
    key: KeyLike,
    n_per_class: int,
    pt_range: Sequence[float] | None = (550.0, 650.0),
    edges: Sequence[float] | None = None,
    eta_max: float = 2.0,
    detector: Detector = Detector(),
    max_particles: int = MAX_PARTICLES,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, Any]:
    """The ``name_params`` of :func:`cached` for a sample in ``pt_range`` (or in pT bins ``edges``): everything its
    jets depend on, as JSON (the key as its uint32 words); :func:`cached_sample` adds the energy bins."""
    import jax

    return {
        "name": name,
        "key": [int(w) for w in np.asarray(jax.random.key_data(_as_key(key))).ravel()],
        "n_per_class": int(n_per_class),
        "pt_range": None if edges is not None else [float(v) for v in pt_range],
        "edges": None if edges is None else [float(v) for v in edges],
        "eta_max": float(eta_max),
        "detector": dataclasses.asdict(detector),
        "max_particles": int(max_particles),
        "chunk_size": int(chunk_size),
    }


def cache_path(cache_dir: str | Path, name_params: dict) -> Path:
    """``<cache_dir>/<name>-<hash>``: the hash covers name_params, GENERATOR_VERSION and the Pythia and FastJet
    versions; ``name`` is name_params["name"] if given, else "jets"."""
    identity = {
        "params": json.loads(json.dumps(name_params, sort_keys=True, default=str)),
        "generator_version": GENERATOR_VERSION,
        "pythia8mc": _package_version("pythia8mc"),
        "fastjet": _package_version("fastjet"),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name_params.get("name", "jets")))
    return Path(cache_dir) / f"{name}-{digest}"


def _read_entry(path: Path) -> Jets | str:
    """The cached jets, or why the entry cannot be used."""
    from jaxbench.records import read_arrays, read_json

    try:
        card = read_json(path / "datacard.json")
        arrays = read_arrays(path / "arrays")
    except Exception as error:  # noqa: BLE001 (any unreadable entry is made again)
        return str(error)
    if set(arrays) != set(_FIELDS):
        return f"arrays {sorted(arrays)} instead of {list(_FIELDS)}"
    n = card.get("num_jets") if isinstance(card, dict) else None
    shapes = {name: arrays[name].shape for name in _FIELDS}
    expected = {"p4": (n, card.get("max_particles"), 4), "label": (n,), "truth_p4": (n, 4), "ttv": (n,)}
    if shapes != expected:
        return f"shapes {shapes} do not match the datacard's {expected}"
    return Jets(*(arrays[name] for name in _FIELDS))


def cached(cache_dir: str | Path, name_params: dict, make: Callable[[], Jets | tuple[Jets, dict]]) -> Jets:
    """The jets stored under ``name_params`` in ``cache_dir``, or ``make()``'s, stored there first.

    An entry is a directory (:func:`cache_path`) with one zarr array per Jets field and a datacard.json
    (name_params, versions, counts, time, jets/s, and the info dict when ``make`` returns ``(jets, info)``),
    written in a temporary directory and renamed into place. An entry that cannot be read or whose shapes
    disagree with its datacard is made again (logged).
    """
    from jaxbench.records import atomic_write_json, write_arrays

    path = cache_path(cache_dir, name_params)
    if path.exists():
        found = _read_entry(path)
        if isinstance(found, Jets):
            return found
        _LOG.warning("jet cache %s is unusable (%s); generating it again.", path, found)
    start = time.perf_counter()
    made = make()
    jets, info = made if isinstance(made, tuple) and not isinstance(made, Jets) else (made, {})
    seconds = time.perf_counter() - start
    card = {
        "source": "generated by jaxbench.tasks.jets.generator (Pythia 8 + cell detector + FastJet anti-kT 0.8)",
        "params": json.loads(json.dumps(name_params, sort_keys=True, default=str)),
        "generator_version": GENERATOR_VERSION,
        "pythia8mc": _package_version("pythia8mc"),
        "fastjet": _package_version("fastjet"),
        "num_jets": jets.num_jets,
        "max_particles": int(jets.p4.shape[1]),
        "num_top": int(np.sum(jets.label == 1)),
        "num_qcd": int(np.sum(jets.label == 0)),
        "seconds": seconds,
        "jets_per_second": jets.num_jets / seconds if seconds > 0 else None,
        "units": {"p4": "GeV (E, px, py, pz)", "truth_p4": "GeV (E, px, py, pz)"},
        "info": info,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write_arrays(tmp / "arrays", jets._asdict())
        atomic_write_json(tmp / "datacard.json", card)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return jets
