"""NowcastNet's published radar layout: one folder per case of 16-bit grayscale PNG frames.

A case folder ``<case>/`` holds ``<case>-00.png`` ... ``<case>-28.png``: 9 observed and 20 target frames, 10 minutes
apart, 512 x 512 pixels; rain rate (mm/h) = pixel / 10 - 3, clipped to [0, 128] (:func:`.schema.pixels_to_rain`).
NowcastNet evaluates on the central 384 x 384 (``EVALUATION_SIZE``). A dataset folder holds case folders, or
``train/`` and ``test/`` folders of them. Only the first ``data.n_frames`` frames of a case are read.

jaxbench's one extension: a case may hold ``motion.npy`` (``MOTION_FILE``), the true motion (T, 2, H, W) float32
px/step (u along columns, v along rows; entry t moves frame t to t + 1) that the generator knows; the release has
none, and motion is read only when every case of a split has it (else None).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from jaxbench.errors import DataFormatError

from .config import DataConfig
from .schema import Events, NowcastData, pixels_to_rain, rain_to_pixels

PUBLISHED_FRAMES = 29
PUBLISHED_SIZE = 512
EVALUATION_SIZE = 384  # NowcastNet's evaluation crop (central)
CROPS = ("center", "none")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B")
MOTION_FILE = "motion.npy"


def frame_name(case_name: str, index: int) -> str:
    """``<case>-<index:02d>.png``."""
    return f"{case_name}-{index:02d}.png"


def _case_number(name: str) -> int | None:
    numbers = re.findall(r"\d+", name)
    return int(numbers[-1]) if numbers else None


def _read_pixels(path: Path, case: str) -> np.ndarray:
    """One frame's 16-bit values (H, W) uint16."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.array(image) if mode in _SIXTEEN_BIT else None
    except OSError as error:
        raise DataFormatError(
            f"case {case}: {path} is not a readable PNG ({error}); NowcastNet frames are 16-bit grayscale PNGs."
        ) from None
    if pixels is None:
        bits = "an 8-bit" if mode in ("L", "P", "1", "LA") else f"a mode-{mode}"
        raise DataFormatError(
            f"case {case}: {path.name} is {bits} PNG ({mode}); NowcastNet frames are 16-bit grayscale "
            "(rain = pixel / 10 - 3 mm/h): export them with 16 bits (Pillow mode I;16, e.g. write_case)."
        )
    return pixels.astype(np.uint16)


def _crop(pixels: np.ndarray, size: int | None, crop: str, where: str) -> np.ndarray:
    """The central ``size`` x ``size`` of ``pixels`` (..., H, W) (crop "center"), or all of it when it already has
    that size."""
    h, w = pixels.shape[-2:]
    if size is None:
        return pixels
    if h < size or w < size:
        raise DataFormatError(
            f"{where} is {h} x {w} pixels, smaller than data.size={size}: set data.size <= {min(h, w)} "
            "(a multiple of 8), e.g. --set data.size=" + str(max(8, min(h, w) // 8 * 8)) + "."
        )
    if (h, w) == (size, size):
        return pixels
    if crop == "none":
        raise DataFormatError(
            f"{where} is {h} x {w} pixels but data.size={size} with data.crop='none': set data.crop=center "
            f"(the central {size} x {size}) or data.size={h}."
        )
    top, left = (h - size) // 2, (w - size) // 2
    return pixels[..., top : top + size, left : left + size]


def read_case(folder: str | Path, n_frames: int, size: int | None = None, crop: str = "center") -> np.ndarray:
    """The first ``n_frames`` frames of the case folder ``folder`` as rain rate (T, H, W) float32 mm/h; with
    ``size``, the central ``size`` x ``size`` (crop "center") or frames that must be that size (crop "none")."""
    folder = Path(folder)
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}.")
    case = folder.name
    if not (folder / frame_name(case, 0)).is_file():
        raise DataFormatError(_not_a_case(folder))
    frames, first = [], None
    for index in range(n_frames):
        path = folder / frame_name(case, index)
        if not path.is_file():
            found = sorted(p.name for p in folder.glob(f"{case}-*.png"))
            raise DataFormatError(
                f"case {case}: frame {path.name} is missing in {folder} (found {len(found)} frames, "
                f"{found[0]} ... {found[-1]}); {n_frames} are needed (data.n_inputs + data.n_targets): "
                f"lower data.n_targets or add the frame."
            )
        pixels = _read_pixels(path, case)
        if first is None:
            first = pixels.shape
        elif pixels.shape != first:
            raise DataFormatError(
                f"case {case}: frame {path.name} is {pixels.shape[0]} x {pixels.shape[1]} pixels but "
                f"{frame_name(case, 0)} is {first[0]} x {first[1]}: every frame of a case must have the same size."
            )
        frames.append(pixels_to_rain(_crop(pixels, size, crop, f"case {case}: frame {path.name}")))
    return np.stack(frames)


def read_motion(folder: str | Path, n_frames: int, size: int | None = None, crop: str = "center") -> np.ndarray | None:
    """The case's true motion (n_frames, 2, H, W) float32 px/step from its ``motion.npy`` (cropped like the frames),
    or None when the case has none."""
    path = Path(folder) / MOTION_FILE
    if not path.is_file():
        return None
    try:
        motion = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataFormatError(f"case {Path(folder).name}: {path} is not a readable .npy array ({e}); delete it.") from e
    if motion.ndim != 4 or motion.shape[0] < n_frames or motion.shape[1] != 2 or not np.all(np.isfinite(motion)):
        raise DataFormatError(
            f"case {Path(folder).name}: {path} must be finite (T >= {n_frames}, 2, H, W) px/step, got shape "
            f"{motion.shape}; rewrite it or delete it (motion is optional)."
        )
    return _crop(motion[:n_frames].astype(np.float32), size, crop, f"case {Path(folder).name}: {MOTION_FILE}")


def _not_a_case(folder: Path) -> str:
    return (
        f"{folder} is not a NowcastNet case folder: it has no {frame_name(folder.name, 0)} (a case <name>/ holds "
        f"<name>-00.png ... <name>-{PUBLISHED_FRAMES - 1}.png); move other folders out of the dataset folder."
    )


def _sort_key(folder: Path) -> tuple:
    number = _case_number(folder.name)
    return (number is None, number if number is not None else 0, folder.name)


def find_cases(path: str | Path) -> list[Path]:
    """The case folders in ``path`` (every visible subfolder must be one), by case number, then name."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such directory; point --data at a folder of NowcastNet case folders.")
    folders = sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_sort_key)
    if not folders:
        raise DataFormatError(
            f"{path} holds no case folders; NowcastNet data are folders <case>/ of 16-bit PNGs "
            f"<case>-00.png ... <case>-{PUBLISHED_FRAMES - 1}.png (or train/ and test/ folders of them)."
        )
    for folder in folders:
        if not (folder / frame_name(folder.name, 0)).is_file():
            raise DataFormatError(_not_a_case(folder))
    return folders


def _events(folders: list[Path], data: DataConfig, offset: int = 0) -> Events:
    frames = np.stack([read_case(f, data.n_frames, data.size, data.crop) for f in folders])
    numbers = [_case_number(f.name) for f in folders]
    case = [n if n is not None else offset + i for i, n in enumerate(numbers)]
    motions = [read_motion(f, data.n_frames, data.size, data.crop) for f in folders]
    motion = None if any(m is None for m in motions) else np.stack(motions)
    return Events(frames=frames, motion=motion, case=np.asarray(case, np.int32))


def read_dataset(path: str | Path, data: DataConfig) -> NowcastData:
    """Training and test events from ``path``: its ``train/`` and ``test/`` folders (the first ``data.n_train`` and
    ``data.n_test`` cases of each), or else its sorted cases (the last ``data.n_test`` are the test set, up to
    ``data.n_train`` before them the training set); frames cropped to ``data.size``; motion from ``motion.npy`` when
    every case of the split has one, else None."""
    path = Path(path)
    if (path / "train").is_dir() and (path / "test").is_dir():
        train, test = find_cases(path / "train"), find_cases(path / "test")
        if len(test) < data.n_test:
            raise DataFormatError(
                f"{path / 'test'} has {len(test)} cases but data.n_test={data.n_test}: set data.n_test={len(test)}."
            )
        train, test = train[: data.n_train], test[: data.n_test]
        return NowcastData(train=_events(train, data), test=_events(test, data, len(train)))
    cases = find_cases(path)
    if len(cases) <= data.n_test:
        fix = f"set data.n_test <= {len(cases) - 1}" if len(cases) > 1 else "add cases"
        raise DataFormatError(
            f"{path} has {len(cases)} cases, not more than data.n_test={data.n_test} (the last n_test are the test "
            f"set, the cases before them the training set): {fix}, or give train/ and test/ folders."
        )
    split = len(cases) - data.n_test
    train = cases[max(0, split - data.n_train) : split]
    return NowcastData(train=_events(train, data), test=_events(cases[split:], data, split))


def write_case(folder: str | Path, case_name: str, frames: np.ndarray, motion: np.ndarray | None = None) -> Path:
    """Writes rain frames (T, H, W) mm/h as ``folder/<case_name>/<case_name>-XX.png`` (16-bit, NowcastNet's
    encoding, 0.05 mm/h rounding) and, if given, the true motion (T, 2, H, W) px/step as ``motion.npy``; returns
    the case folder."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or not np.all(np.isfinite(frames)):
        raise ValueError(f"case {case_name}: frames must be finite (T, H, W) rain rates, got shape {frames.shape}.")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", case_name):
        raise ValueError(f"case name {case_name!r} must be letters, digits, '_', '-' or '.' (it names files).")
    case = Path(folder) / case_name
    case.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(rain_to_pixels(frame)).save(case / frame_name(case_name, index))
    if motion is not None:
        np.save(case / MOTION_FILE, np.asarray(motion, np.float32), allow_pickle=False)
    return case


def write_dataset(path: str | Path, data: NowcastData) -> None:
    """Writes ``data`` as ``path/train/<case>/`` and ``path/test/<case>/`` folders of 16-bit PNGs (and each case's
    ``motion.npy`` when the events carry motion)."""
    for split, events in (("train", data.train), ("test", data.test)):
        motion = [None] * events.num_events if events.motion is None else np.asarray(events.motion)
        for frames, case, m in zip(np.asarray(events.frames), np.asarray(events.case), motion):
            write_case(Path(path) / split, str(int(case)), frames, m)


def dataset_files(path: str | Path) -> list[Path]:
    """Every PNG and ``motion.npy`` under ``path``, sorted (what the run's data checksum covers)."""
    files = [*Path(path).rglob("*.png"), *Path(path).rglob(MOTION_FILE)]
    return sorted(p for p in files if p.is_file())
