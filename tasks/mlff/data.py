"""Trajectories of one molecule with energy and force labels: the rMD17 loader and the splits.

A :class:`Trajectory` holds the frames of one molecule (fixed atoms) with energies in eV and
forces in eV/Å, plus each frame's place in the original time-ordered trajectory. Real data come
from the revised MD17 archive (Christensen & von Lilienfeld 2020, figshare 12672038), laid out as

    rmd17/npz_data/rmd17_<molecule>.npz     nuclear_charges (N,), coords (F, N, 3) Å,
                                            energies (F,) kcal/mol, forces (F, N, 3) kcal/mol/Å,
                                            old_indices (F,), old_energies, old_forces
    rmd17/splits/index_train_0k.csv         k = 1..5: 1000 frame indices, one per line
    rmd17/splits/index_test_0k.csv

``load_rmd17`` validates keys, shapes, dtypes, finiteness and units and converts to eV and eV/Å;
generated data (``tasks.mlff.md``) come as the same Trajectory, so every study runs on either.
"""

from __future__ import annotations

import lzma
import math
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from jaxbench import progress
from jaxbench.errors import ConfigError, DataFormatError

#: 1 kcal/mol in eV: 4184 J/mol divided by the Faraday constant 96485.33212 C/mol (≈ 43.3641 meV).
KCAL_PER_MOL_IN_EV = 4184.0 / 96485.33212
HARTREE_IN_EV = 27.211386245988
BOHR_IN_ANGSTROM = 0.529177210903
HARTREE_IN_KCAL_PER_MOL = HARTREE_IN_EV / KCAL_PER_MOL_IN_EV  # ≈ 627.5095

#: Molecules of the rMD17 archive and their formulas (Hill order).
RMD17_FORMULAS: dict[str, str] = {
    "aspirin": "C9H8O4",
    "azobenzene": "C12H10N2",
    "benzene": "C6H6",
    "ethanol": "C2H6O",
    "malonaldehyde": "C3H4O2",
    "naphthalene": "C10H8",
    "paracetamol": "C8H9NO2",
    "salicylic": "C7H6O3",
    "toluene": "C7H8",
    "uracil": "C4H4N2O2",
}
RMD17_KEYS = ("nuclear_charges", "coords", "energies", "forces", "old_indices")
RMD17_SPLITS = range(1, 6)
RMD17_SPLIT_SIZE = 1000
RMD17_DATACARD: dict[str, object] = {
    "source": "revised MD17 (rMD17), Christensen & von Lilienfeld, Mach. Learn.: Sci. Technol. 2020",
    "archive": "figshare.com/articles/dataset/Revised_MD17_dataset_rMD17_/12672038 (rmd17.tar.bz2)",
    "level_of_theory": "PBE/def2-SVP (ORCA, very tight SCF, dense grid), single points on MD17 frames",
    "dynamics": "MD17 trajectories: 500 K, 0.5 fs steps (Chmiela et al. 2017)",
    "units_in_file": {"coords": "Å", "energies": "kcal/mol", "forces": "kcal/mol/Å"},
    "units_loaded": {"positions": "Å", "energy": "eV", "forces": "eV/Å"},
    "time_index": "old_indices: the frame's index in the original time-ordered MD17 trajectory",
    "caveat": "frames are correlated in time; the archive's readme warns against training on more "
    "than 1000 random frames",
}
_DOWNLOAD = (
    "The archive is rmd17.tar.bz2 from figshare.com/articles/dataset/Revised_MD17_dataset_rMD17_/"
    "12672038; extract it and pass the rmd17/ folder or an rmd17_<molecule>.npz file"
)

# Unit heuristics (see _check_units). Free-atom total energies in Hartree (nonrelativistic
# estimates of the exact energies, Chakravorty et al. 1993): a molecule's total energy is their
# sum within ~1% (the atomization energy), for any basis set worth using.
_ATOM_ENERGY_HARTREE = {1: -0.5, 6: -37.845, 7: -54.589, 8: -75.067, 9: -99.734, 16: -398.11, 17: -460.15}
_BOND_RATIO_RANGE = (0.75, 1.35)  # nearest-neighbour distance / covalent-radius sum, in Å
_ENERGY_RATIO_RANGE = (0.9, 1.1)  # total energy / (627.5 × summed free-atom energies)
_FORCE_RMS_RANGE = (2.0, 400.0)  # kcal/mol/Å, RMS force component over frames
_MIN_DISTANCE = 0.5  # Å: closer atoms mean a corrupt frame
_UNIT_SAMPLE_FRAMES = 256
# What a truncated or corrupted npz raises from zipfile, its decompressors and numpy's .npy reader:
# a corrupt header can name an unsupported compression method, zip version or encryption flag.
_UNREADABLE = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)


class Trajectory(NamedTuple):
    """Frames of one molecule with labels.

    Shapes: species (N,) int32 atomic numbers; positions (F, N, 3) float64 in Å; energy (F,)
    float64 in eV; forces (F, N, 3) float64 in eV/Å (minus the energy gradient); time_index (F,)
    int64, the frame's position in the original time-ordered trajectory (rMD17's old_indices, or
    the MD step of generated frames).
    """

    species: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    time_index: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.species.shape[0])


def take(traj: Trajectory, indices: ArrayLike) -> Trajectory:
    """The frames ``indices`` (int array into the trajectory, any order) of ``traj``."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"take: frame indices must be integers, got dtype {indices.dtype}")
    return traj._replace(
        positions=traj.positions[indices],
        energy=traj.energy[indices],
        forces=traj.forces[indices],
        time_index=traj.time_index[indices],
    )


def concatenate(trajectories: Iterable[Trajectory]) -> Trajectory:
    """Frames of several trajectories of the same molecule, in the order given."""
    trajectories = list(trajectories)
    if not trajectories:
        raise ValueError("concatenate: no trajectories given")
    species = trajectories[0].species
    for i, traj in enumerate(trajectories[1:], 1):
        if not np.array_equal(traj.species, species):
            raise DataFormatError(
                f"concatenate: trajectory {i} has species {formula(traj.species)} in another "
                f"order or composition than trajectory 0 ({formula(species)})."
            )
    return Trajectory(
        species=species,
        positions=np.concatenate([t.positions for t in trajectories]),
        energy=np.concatenate([t.energy for t in trajectories]),
        forces=np.concatenate([t.forces for t in trajectories]),
        time_index=np.concatenate([t.time_index for t in trajectories]),
    )


def formula(species: ArrayLike) -> str:
    """Hill formula of atomic numbers, e.g. ``C9H8O4``."""
    from ase.data import chemical_symbols

    symbols, counts = np.unique([chemical_symbols[int(z)] for z in np.asarray(species)], return_counts=True)
    count = dict(zip(symbols.tolist(), counts.tolist()))
    first = [s for s in ("C", "H") if s in count] if "C" in count else []
    order = first + sorted(s for s in count if s not in first)
    return "".join(f"{s}{count[s] if count[s] > 1 else ''}" for s in order)


def summarize(traj: Trajectory) -> dict[str, object]:
    """Datacard facts of a trajectory: sizes, formula, label statistics (eV, eV/Å), time span."""
    return {
        "formula": formula(traj.species),
        "num_atoms": traj.num_atoms,
        "num_frames": traj.num_frames,
        "energy_ev": {
            "mean": float(np.mean(traj.energy)),
            "std": float(np.std(traj.energy)),
            "min": float(np.min(traj.energy)),
            "max": float(np.max(traj.energy)),
        },
        "force_rms_ev_per_angstrom": float(np.sqrt(np.mean(np.square(traj.forces)))),
        "time_index": {"first": int(np.min(traj.time_index)), "last": int(np.max(traj.time_index))},
    }


# -- rMD17 files ---------------------------------------------------------------------------------
def rmd17_file(path: str | Path, molecule: str = "aspirin") -> Path:
    """The ``rmd17_<molecule>.npz`` at ``path``: the file itself, or found under a directory.

    A directory may be the extracted archive's parent, ``rmd17/`` or ``rmd17/npz_data/``.
    """
    path = Path(path)
    if path.is_file():
        return path
    name = f"rmd17_{molecule}.npz"
    candidates = [path / name, path / "npz_data" / name, path / "rmd17" / "npz_data" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = (
        "does not exist"
        if not path.exists()
        else "holds none of " + ", ".join(str(c.relative_to(path)) for c in candidates)
    )
    raise DataFormatError(f"{path} {where}. {_DOWNLOAD}.")


def load_rmd17(
    path: str | Path,
    molecule: str = "aspirin",
    *,
    check_units: bool = True,
    check_energy_units: bool = True,
    require_old_indices: bool = True,
) -> Trajectory:
    """Load and validate an rMD17 npz file; energies in eV, forces in eV/Å, positions in Å.

    ``path`` is an npz file or a directory (see :func:`rmd17_file`). Checks the keys, shapes,
    dtypes and finiteness, that no two atoms of a frame are closer than 0.5 Å, that the formula
    matches the molecule named by the file (``rmd17_aspirin.npz`` must be C9H8O4), that
    old_indices are unique non-negative integers, and (``check_units``) the units:

    - coords in Å: over up to 256 frames, the median over atoms of nearest-neighbour distance /
      (sum of covalent radii) lies in [0.75, 1.35]; Bohr gives ~1.9, nm ~0.1, pm ~100.
    - energies in kcal/mol: the median total energy / (627.5 × summed free-atom energies in
      Hartree) lies in [0.9, 1.1]; Hartree gives ~1/627.5, eV ~1/23, kJ/mol ~4.2, and relative
      (shifted) energies give ~0. Skipped for elements other than H, C, N, O, F, S, Cl.
    - forces in kcal/mol/Å: the RMS force component lies in [2, 400] (500 K MD of rMD17
      molecules gives ~30); eV/Å gives ~1.3, Hartree/Bohr ~0.05.

    Without ``old_indices`` (``require_old_indices=False``) time_index is the file's row order.
    The file's ``old_energies`` and ``old_forces`` (the original MD17 labels) are not read.
    """
    file = rmd17_file(path, molecule)
    name = file.name
    try:
        with np.load(file, allow_pickle=False) as npz:
            found = list(npz.files)
            required = RMD17_KEYS if require_old_indices else RMD17_KEYS[:-1]
            missing = [key for key in required if key not in found]
            if missing:
                fix = (
                    "rMD17 files from the official archive have it; pass require_old_indices=False "
                    "to use the file's row order as time (the temporal split is then meaningless)"
                    if missing == ["old_indices"]
                    else _DOWNLOAD
                )
                raise DataFormatError(
                    f"{name} has no key {', '.join(repr(m) for m in missing)} "
                    f"(found: {', '.join(found) or 'nothing'}). {fix}."
                )
            arrays = {key: npz[key] for key in RMD17_KEYS if key in found}
    except _UNREADABLE as error:
        if isinstance(error, DataFormatError):
            raise
        reason = " ".join(str(error).split()) or type(error).__name__  # one line
        raise DataFormatError(f"{name} is not a readable npz file ({reason}). {_DOWNLOAD}.") from None

    species = _integers(name, "nuclear_charges", arrays["nuclear_charges"], ndim=1)
    n_atoms = species.shape[0]
    bad = species[(species < 1) | (species > 118)]
    if n_atoms == 0 or bad.size:
        raise DataFormatError(
            f"{name}: field 'nuclear_charges' must hold atomic numbers 1..118 for at least one "
            f"atom; got {bad[:5].tolist() if bad.size else 'no atoms'}."
        )
    coords = _floats(name, "coords", arrays["coords"], (None, n_atoms, 3))
    n_frames = coords.shape[0]
    energies = arrays["energies"]
    if energies.ndim == 2 and energies.shape[1:] == (1,):
        energies = energies[:, 0]  # MD17-style (F, 1) columns
    energies = _floats(name, "energies", energies, (n_frames,))
    forces = _floats(name, "forces", arrays["forces"], (n_frames, n_atoms, 3))
    if "old_indices" in arrays:
        old = _integers(name, "old_indices", arrays["old_indices"], ndim=1).astype(np.int64)
        if old.shape != (n_frames,):
            raise DataFormatError(
                f"{name}: field 'old_indices' has shape {old.shape}, expected ({n_frames},) (one per "
                "frame of 'coords')."
            )
        if old.size and old.min() < 0:
            raise DataFormatError(f"{name}: field 'old_indices' has negative entries ({old.min()}).")
        values, counts = np.unique(old, return_counts=True)
        if np.any(counts > 1):
            raise DataFormatError(
                f"{name}: field 'old_indices' repeats {values[counts > 1][:5].tolist()}; each frame "
                "has its own place in the original trajectory. Re-extract the archive."
            )
    else:
        old = np.arange(n_frames, dtype=np.int64)

    expected = RMD17_FORMULAS.get(file.stem.removeprefix("rmd17_"))
    if expected is not None and formula(species) != expected:
        raise DataFormatError(
            f"{name}: field 'nuclear_charges' gives {formula(species)}, but {file.stem} is "
            f"{expected}. The file was renamed or mixed up; use the molecule's own file."
        )
    if n_frames == 0:
        raise DataFormatError(f"{name}: field 'coords' has no frames.")
    if check_units:
        _check_units(name, species, coords, energies, forces, check_energy_units)
    _check_no_overlaps(name, coords)
    return Trajectory(
        species=species.astype(np.int32),
        positions=coords.astype(np.float64),
        energy=energies.astype(np.float64) * KCAL_PER_MOL_IN_EV,
        forces=forces.astype(np.float64) * KCAL_PER_MOL_IN_EV,
        time_index=old,
    )


def write_rmd17(path: str | Path, traj: Trajectory) -> None:
    """Write a trajectory in the rMD17 npz layout (kcal/mol, kcal/mol/Å, Å; old_indices).

    ``old_energies`` and ``old_forces`` repeat the labels, since there are no other ones.
    """
    energies = np.asarray(traj.energy, np.float64) / KCAL_PER_MOL_IN_EV
    forces = np.asarray(traj.forces, np.float64) / KCAL_PER_MOL_IN_EV
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(
            f,
            nuclear_charges=np.asarray(traj.species, np.int64),
            coords=np.asarray(traj.positions, np.float64),
            energies=energies,
            forces=forces,
            old_indices=np.asarray(traj.time_index, np.int64),
            old_energies=energies,
            old_forces=forces,
        )


def _integers(name: str, field: str, array: np.ndarray, ndim: int) -> np.ndarray:
    if array.dtype.kind not in "iu":
        raise DataFormatError(
            f"{name}: field {field!r} has dtype {array.dtype}, expected integers. rMD17 stores "
            f"{field} as integers; convert with np.asarray(values).astype(np.int64) if they are "
            "whole numbers."
        )
    if array.ndim != ndim:
        raise DataFormatError(f"{name}: field {field!r} has shape {array.shape}, expected {ndim} dimension(s).")
    return array


def _floats(name: str, field: str, array: np.ndarray, shape: tuple) -> np.ndarray:
    """A float array of the given shape (None: any length) whose entries are all finite."""
    if array.dtype.kind != "f" or array.dtype.itemsize < 4:
        raise DataFormatError(
            f"{name}: field {field!r} has dtype {array.dtype}, expected float64 or float32 (rMD17 stores float64; "
            "float16 keeps only 3 significant digits)."
        )
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        spelled = "(" + ", ".join("F" if s is None else str(s) for s in shape) + ")"
        raise DataFormatError(
            f"{name}: field {field!r} has shape {array.shape}, expected {spelled} "
            "(frames F, atoms of 'nuclear_charges', xyz)."
        )
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.flatnonzero(~finite.reshape(array.shape[0], -1).all(axis=1))
        raise DataFormatError(
            f"{name}: field {field!r} has {int((~finite).sum())} NaN or infinite values in "
            f"{rows.size} frames (first: frame {int(rows[0])}). Drop those frames with take() "
            "after fixing the file, or re-extract the archive."
        )
    return array


def _nearest_neighbour_ratio(species: np.ndarray, coords: np.ndarray) -> float:
    """Median of nearest-neighbour distance / covalent-radius sum over atoms and frames."""
    from ase.data import covalent_radii

    if species.shape[0] < 2:
        return float("nan")
    radii = covalent_radii[species]
    diff = coords[:, :, None, :] - coords[:, None, :, :]
    distance = np.sqrt(np.sum(diff * diff, axis=-1))
    n = species.shape[0]
    distance[:, np.arange(n), np.arange(n)] = np.inf
    nearest = np.argmin(distance, axis=2)
    ratio = np.take_along_axis(distance, nearest[:, :, None], axis=2)[:, :, 0] / (radii[None, :] + radii[nearest])
    return float(np.median(ratio))


def _check_units(name, species, coords, energies, forces, check_energies=True) -> None:
    sample = np.unique(np.linspace(0, coords.shape[0] - 1, _UNIT_SAMPLE_FRAMES).round().astype(int))
    skip = "pass check_units=False if you are sure"

    ratio = _nearest_neighbour_ratio(species, coords[sample])
    low, high = _BOND_RATIO_RANGE
    if math.isfinite(ratio) and not low <= ratio <= high:
        guesses = {
            "Bohr": (BOHR_IN_ANGSTROM, "coords * 0.529177"),
            "nm": (10.0, "coords * 10"),
            "pm": (0.01, "coords / 100"),
        }
        guess = next((unit for unit, (scale, _) in guesses.items() if low <= ratio * scale <= high), None)
        fix = f"they look like {guess}; convert with {guesses[guess][1]}" if guess else "convert them to Å"
        raise DataFormatError(
            f"{name}: field 'coords' does not look like Å: nearest neighbours sit at {ratio:.2f} times "
            f"the covalent bond length (expected {low}-{high} for Å). rMD17 stores Å; {fix}, or "
            f"{skip}."
        )

    if check_energies and all(int(z) in _ATOM_ENERGY_HARTREE for z in species):
        reference = sum(_ATOM_ENERGY_HARTREE[int(z)] for z in species) * HARTREE_IN_KCAL_PER_MOL
        ratio = float(np.median(energies)) / reference
        low, high = _ENERGY_RATIO_RANGE
        if not low <= ratio <= high:
            guesses = {
                "Hartree": HARTREE_IN_KCAL_PER_MOL,
                "eV": 1.0 / KCAL_PER_MOL_IN_EV,
                "kJ/mol": 1.0 / 4.184,
                "Rydberg": HARTREE_IN_KCAL_PER_MOL / 2.0,
            }
            guess = next((unit for unit, scale in guesses.items() if low <= ratio * scale <= high), None)
            if guess:
                fix = f"they look like {guess}; multiply by {guesses[guess]:.6g} to get kcal/mol"
            else:
                fix = "they look like relative or atomization energies, not total energies"
            raise DataFormatError(
                f"{name}: field 'energies' does not look like total energies in kcal/mol: the median "
                f"{np.median(energies):.6g} is {ratio:.3g} times the expected "
                f"{reference:.6g} kcal/mol for {formula(species)} (free atoms summed). {fix}, or "
                f"{skip}."
            )

    rms = float(np.sqrt(np.mean(np.square(forces[sample]))))
    low, high = _FORCE_RMS_RANGE
    if not low <= rms <= high:
        raise DataFormatError(
            f"{name}: field 'forces' does not look like kcal/mol/Å: the RMS force component is "
            f"{rms:.3g} (500 K rMD17 trajectories give ~30; expected {low:g}-{high:g}). eV/Å gives "
            f"~1.3 (multiply by {1 / KCAL_PER_MOL_IN_EV:.4f}), Hartree/Bohr ~0.05 (multiply by "
            f"{HARTREE_IN_KCAL_PER_MOL / BOHR_IN_ANGSTROM:.1f}); or {skip} (e.g. frames near a minimum)."
        )


def _check_no_overlaps(name: str, coords: np.ndarray, chunk: int = 8192) -> None:
    n = coords.shape[1]
    if n < 2:
        return
    upper = np.triu_indices(n, 1)
    for start in range(0, coords.shape[0], chunk):
        block = coords[start : start + chunk]
        diff = block[:, upper[0]] - block[:, upper[1]]
        closest = np.sqrt(np.min(np.sum(diff * diff, axis=-1), axis=1))
        bad = np.flatnonzero(closest < _MIN_DISTANCE)
        if bad.size:
            frame = start + int(bad[0])
            raise DataFormatError(
                f"{name}: field 'coords' has atoms closer than {_MIN_DISTANCE} Å in "
                f"{bad.size}+ frames (first: frame {frame}, {closest[bad[0]]:.3f} Å). Those frames "
                "are corrupt; re-extract the archive or drop them with take()."
            )


# -- splits ----------------------------------------------------------------------------------------
def rmd17_splits_dir(root: str | Path, k: int = 1) -> Path:
    """The folder holding ``index_train_0k.csv`` at ``root`` (archive parent, rmd17/, splits/ or an npz)."""
    root = Path(root)
    base = root.parent if root.is_file() else root
    candidates = [base, base / "splits", base / "rmd17" / "splits", base.parent / "splits"]
    name = f"index_train_{k:02d}.csv"
    for candidate in candidates:
        if (candidate / name).is_file():
            return candidate
    raise DataFormatError(
        f"no rMD17 split file {name} at {root}; looked in {', '.join(str(c) for c in candidates)}. {_DOWNLOAD}."
    )


def load_published_split(
    root: str | Path, k: int, *, n_frames: int | None = None, expected_size: int | None = RMD17_SPLIT_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) int64 frame indices of the published rMD17 split ``k`` (1..5).

    Reads ``index_train_0k.csv`` and ``index_test_0k.csv`` (one integer per line) from the
    archive's splits folder (see :func:`rmd17_splits_dir`). Checks that each holds
    ``expected_size`` indices (1000 in the archive; None: any number), no duplicates, no overlap
    between train and test, and that every index is in [0, n_frames) (n_frames None: >= 0 only).
    """
    if k not in RMD17_SPLITS:
        raise ConfigError(f"rMD17 publishes splits 1..5; got k={k!r}.")
    folder = rmd17_splits_dir(root, k)
    train = _read_index_file(folder / f"index_train_{k:02d}.csv", n_frames, expected_size)
    test = _read_index_file(folder / f"index_test_{k:02d}.csv", n_frames, expected_size)
    shared = np.intersect1d(train, test)
    if shared.size:
        raise DataFormatError(
            f"{folder}: index_train_{k:02d}.csv and index_test_{k:02d}.csv share {shared.size} frames "
            f"(first: {shared[:5].tolist()}); a test frame must never be trained on. Re-extract the "
            "archive's splits/ folder."
        )
    return train, test


def _read_index_file(path: Path, n_frames: int | None, expected_size: int | None) -> np.ndarray:
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist. {_DOWNLOAD}.")
    values = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value == round(value)):
            raise DataFormatError(
                f"{path.name}, line {number}: {text!r} is not a frame index. Split files hold one "
                "non-negative integer per line."
            )
        values.append(int(value))
    indices = np.asarray(values, dtype=np.int64)
    if expected_size is not None and indices.size != expected_size:
        raise DataFormatError(
            f"{path.name} holds {indices.size} indices; the published rMD17 splits hold "
            f"{expected_size}. Re-extract the archive, or pass expected_size=None for your own split."
        )
    if indices.size == 0:
        raise DataFormatError(f"{path.name} holds no indices.")
    out_of_range = indices[(indices < 0) | ((indices >= n_frames) if n_frames is not None else False)]
    if out_of_range.size:
        bound = f"[0, {n_frames})" if n_frames is not None else ">= 0"
        raise DataFormatError(
            f"{path.name}: {out_of_range.size} indices outside {bound} (first: "
            f"{out_of_range[:5].tolist()}). The split belongs to another file or was shifted (the "
            "archive's indices start at 0)."
        )
    values, counts = np.unique(indices, return_counts=True)
    if np.any(counts > 1):
        raise DataFormatError(
            f"{path.name} repeats indices {values[counts > 1][:5].tolist()}; each frame appears once."
        )
    return indices


def temporal_split(traj: Trajectory, test_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(pool_idx, test_idx): frame indices ordered by time_index; the last ``test_fraction`` is the test window.

    Both are int64 indices into ``traj`` in increasing time; every pool frame precedes every test
    frame. The test window holds round(F × test_fraction) frames (at least 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1); got {test_fraction!r}.")
    time_index = np.asarray(traj.time_index)
    n = time_index.shape[0]
    n_test = max(1, int(round(n * test_fraction)))
    if n_test >= n:
        raise ConfigError(f"a trajectory of {n} frames cannot hold a training pool and {n_test} test frames.")
    values, counts = np.unique(time_index, return_counts=True)
    if np.any(counts > 1):
        raise DataFormatError(
            f"time_index repeats {values[counts > 1][:5].tolist()}; frames cannot be ordered in time. "
            "Concatenated trajectories need distinct time indices (offset each run)."
        )
    order = np.argsort(time_index, kind="stable").astype(np.int64)
    return order[: n - n_test], order[n - n_test :]


def training_window(pool_idx: ArrayLike, start_fraction: float, width_fraction: float) -> np.ndarray:
    """The contiguous slice of the time-ordered training pool covering [start, start + width).

    Fractions are of the pool (which ends where the test window of :func:`temporal_split` begins),
    so a window ends before the test window iff start_fraction + width_fraction <= 1. The slice is
    pool[round(start × P) : round(start × P) + max(1, round(width × P))].
    """
    pool_idx = np.asarray(pool_idx)
    p = pool_idx.shape[0]
    if not (0.0 <= start_fraction < 1.0 and 0.0 < width_fraction <= 1.0):
        raise ConfigError(
            f"training window: need 0 <= start_fraction < 1 and 0 < width_fraction <= 1; got "
            f"start {start_fraction!r}, width {width_fraction!r}."
        )
    if start_fraction + width_fraction > 1.0 + 1e-9:
        raise ConfigError(
            f"training window [{start_fraction:g}, {start_fraction + width_fraction:g}) of the pool "
            "runs into the test window; choose start_fraction + width_fraction <= 1."
        )
    start = int(round(start_fraction * p))
    width = max(1, int(round(width_fraction * p)))
    if start + width > p:
        start = p - width  # rounding at the end of the pool
    return pool_idx[start : start + width]


def evenly_spaced(indices: ArrayLike, n: int) -> np.ndarray:
    """``n`` entries of ``indices`` at evenly spaced positions, first and last included."""
    indices = np.asarray(indices)
    if not 1 <= n <= indices.shape[0]:
        raise ConfigError(f"cannot pick {n} frames from {indices.shape[0]}.")
    return indices[np.linspace(0, indices.shape[0] - 1, n).round().astype(np.int64)]


# -- the task's data and evaluation items -----------------------------------------------------------
class Dataset(NamedTuple):
    """A trajectory and, for the published rMD17 split, its (train, test) frame indices (else None)."""

    trajectory: Trajectory
    published: tuple[np.ndarray, np.ndarray] | None = None


class EvaluationFrames(NamedTuple):
    """Labelled frames as evaluation items (leading axis n): frame index into the trajectory, its
    time_index, species (n, N), positions (n, N, 3) Å, energy (n,) eV, forces (n, N, 3) eV/Å."""

    frame: np.ndarray
    time_index: np.ndarray
    species: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray


def pool_and_test(dataset: Dataset, split: str, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, test) frame indices: the temporal split, or (``split="published"``) the published ones."""
    if split != "published":
        return temporal_split(dataset.trajectory, test_fraction)
    if dataset.published is None:
        raise ConfigError(
            "data.split=published needs the rMD17 files (--data PATH) with their splits/ folder; "
            "generated data use data.split=temporal."
        )
    train, test = dataset.published
    return np.sort(np.asarray(train)), np.asarray(test)


def evaluated_frames(dataset: Dataset, split: str, test_fraction: float, n: int) -> EvaluationFrames:
    """``n`` evenly spaced frames of the test set (all if fewer) as evaluation items."""
    traj, test = dataset.trajectory, pool_and_test(dataset, split, test_fraction)[1]
    idx = evenly_spaced(test, min(n, test.shape[0]))
    species = np.broadcast_to(np.asarray(traj.species, np.int32), (idx.shape[0], traj.num_atoms)).copy()
    return EvaluationFrames(idx, traj.time_index[idx], species, traj.positions[idx], traj.energy[idx], traj.forces[idx])


def write_dataset(root: str | Path, dataset: Dataset, molecule: str) -> Path:
    """``root`` in the rMD17 layout (npz_data/, and splits/ for a published split); returns what to read."""
    root = Path(root)
    write_rmd17(root / "npz_data" / f"rmd17_{molecule}.npz", dataset.trajectory)
    if dataset.published is not None:
        (root / "splits").mkdir(parents=True, exist_ok=True)
        for name, idx in zip(("train", "test"), dataset.published):
            np.savetxt(root / "splits" / f"index_{name}_01.csv", np.asarray(idx), fmt="%d")
    return root


def read_dataset(
    path: str | Path, molecule: str, *, published: bool, check_units: bool = True, check_energy_units: bool = True
) -> Dataset:
    """An rMD17 npz (or the archive folder holding it) and, if ``published``, its split k=1."""
    with progress.spinner(f"mlff: reading and checking {rmd17_file(path, molecule).name}"):
        traj = load_rmd17(path, molecule, check_units=check_units, check_energy_units=check_energy_units)
    if not published:
        return Dataset(traj)
    return Dataset(traj, load_published_split(path, 1, n_frames=traj.num_frames, expected_size=None))
