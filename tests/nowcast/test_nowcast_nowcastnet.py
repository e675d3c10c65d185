"""NowcastNet's case folders of 16-bit PNGs: encoding, round trip, cropping, splits and every error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from jaxbench.errors import DataFormatError
from jaxbench.tasks.nowcast import nowcastnet
from jaxbench.tasks.nowcast.config import DataConfig
from jaxbench.tasks.nowcast.schema import Events, NowcastData

# 48 x 48 frames cropped to 32, 3 + 4 frames
DATA = DataConfig(n_train=3, n_test=2, n_inputs=3, n_targets=4, size=32)
T, SIDE = DATA.n_frames, 48


def _rain(seed: int, n_frames: int = T, side: int = SIDE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.gamma(0.5, 8.0, (n_frames, side, side)) * (rng.random((n_frames, side, side)) < 0.6)).astype(np.float32)


def _write_pixels(folder, name: str, pixels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / name)


def test_encoding_of_known_pixel_values(tmp_path):
    """pixel 0 -> 0 (clipped), 30 -> 0, 330 -> 30 mm/h, 2000 -> 128 (clipped), 35 -> 0.5."""
    pixels = np.zeros((T, SIDE, SIDE), np.uint16)
    pixels[0, 0, :5] = [0, 30, 330, 2000, 35]
    for t in range(T):
        _write_pixels(tmp_path / "7", f"7-{t:02d}.png", pixels[t])
    rain = nowcastnet.read_case(tmp_path / "7", T)
    assert rain.dtype == np.float32 and rain.shape == (T, SIDE, SIDE)
    np.testing.assert_allclose(rain[0, 0, :5], [0.0, 0.0, 30.0, 128.0, 0.5], atol=1e-5)


def test_round_trip_within_the_png_quantisation(tmp_path):
    rain = _rain(0)
    rain[0, 0, 0] = 200.0  # clipped to 128 by the encoding
    case = nowcastnet.write_case(tmp_path, "12", rain)
    assert sorted(p.name for p in case.iterdir()) == [f"12-{t:02d}.png" for t in range(T)]
    with Image.open(case / "12-00.png") as image:
        assert image.mode == "I;16"
    back = nowcastnet.read_case(case, T)
    np.testing.assert_allclose(back, np.clip(rain, 0, 128), atol=0.05 + 1e-5)
    assert back[0, 0, 0] == 128.0


def test_centre_crop_puts_a_marked_pixel_where_expected(tmp_path):
    """48 -> 32 drops 8 pixels per side: a mark at (10, 30) lands at (2, 22); 512 -> 384 (the evaluation) at 64."""
    rain = np.zeros((T, SIDE, SIDE), np.float32)
    rain[:, 10, 30] = 50.0
    nowcastnet.write_case(tmp_path, "1", rain)
    cropped = nowcastnet.read_case(tmp_path / "1", T, size=32)
    assert cropped.shape == (T, 32, 32)
    assert np.argwhere(cropped[0] > 0).tolist() == [[2, 22]]
    odd = np.zeros((2, 45, 45), np.float32)  # (45 - 32) // 2 = 6
    odd[:, 6, 6] = 10.0
    nowcastnet.write_case(tmp_path, "2", odd)
    assert np.argwhere(nowcastnet.read_case(tmp_path / "2", 2, size=32)[0] > 0).tolist() == [[0, 0]]
    big = np.zeros((1, nowcastnet.PUBLISHED_SIZE, nowcastnet.PUBLISHED_SIZE), np.float32)
    big[0, 64, 447] = 20.0
    nowcastnet.write_case(tmp_path, "3", big)
    evaluation = nowcastnet.read_case(tmp_path / "3", 1, size=nowcastnet.EVALUATION_SIZE)
    assert np.argwhere(evaluation[0] > 0).tolist() == [[0, 383]]


def test_only_the_needed_frames_are_read(tmp_path):
    nowcastnet.write_case(tmp_path, "5", _rain(1, n_frames=T + 3))
    assert nowcastnet.read_case(tmp_path / "5", T).shape[0] == T


def _events(seeds, cases) -> Events:
    return Events(np.stack([_rain(s) for s in seeds]), None, np.asarray(cases, np.int32))


def test_dataset_round_trip_with_train_and_test_folders(tmp_path):
    data = NowcastData(train=_events([1, 2, 3], [4, 10, 11]), test=_events([4, 5], [20, 3]))
    nowcastnet.write_dataset(tmp_path, data)
    files = nowcastnet.dataset_files(tmp_path)
    assert len(files) == 5 * T and files == sorted(files)
    assert {f.parent.parent.name for f in files} == {"train", "test"}
    back = nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, size=SIDE))
    assert back.train.motion is None and back.test.motion is None
    np.testing.assert_array_equal(back.train.case, [4, 10, 11])  # sorted by case number
    np.testing.assert_array_equal(back.test.case, [3, 20])
    np.testing.assert_allclose(back.train.frames, np.clip(data.train.frames, 0, 128), atol=0.05 + 1e-5)
    np.testing.assert_allclose(back.test.frames[1], np.clip(data.test.frames[0], 0, 128), atol=0.05 + 1e-5)
    cropped = nowcastnet.read_dataset(tmp_path, DATA)
    assert cropped.train.frames.shape == (3, T, 32, 32) and cropped.test.frames.dtype == np.float32


def test_true_motion_travels_with_the_cases_and_is_cropped_like_the_frames(tmp_path):
    rng = np.random.default_rng(0)
    motion = rng.normal(size=(2, T, 2, SIDE, SIDE)).astype(np.float32)
    events = Events(np.stack([_rain(1), _rain(2)]), motion, np.asarray([1, 2], np.int32))
    nowcastnet.write_dataset(tmp_path, NowcastData(train=events, test=events))
    assert sum(f.name == nowcastnet.MOTION_FILE for f in nowcastnet.dataset_files(tmp_path)) == 4  # checksummed
    back = nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, n_train=2))
    np.testing.assert_array_equal(back.test.motion, motion[..., 8:40, 8:40])  # the frames' central 32 x 32
    (tmp_path / "test" / "2" / nowcastnet.MOTION_FILE).unlink()
    assert nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, n_train=2)).test.motion is None
    np.save(tmp_path / "test" / "1" / nowcastnet.MOTION_FILE, motion[0, :, :1])
    with pytest.raises(DataFormatError, match=r"case 1: .*motion.npy must be finite \(T >= 7, 2, H, W\)"):
        nowcastnet.read_motion(tmp_path / "test" / "1", T)


def test_flat_folder_splits_the_last_cases_off_as_the_test_set(tmp_path):
    for case in (1, 2, 3, 9, 10, 11):  # numeric order, not 1, 10, 11, 2, ...
        nowcastnet.write_case(tmp_path, str(case), _rain(case))
    data = nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, n_train=3, n_test=2))
    np.testing.assert_array_equal(data.train.case, [2, 3, 9])
    np.testing.assert_array_equal(data.test.case, [10, 11])
    np.testing.assert_allclose(data.test.frames[0], nowcastnet.read_case(tmp_path / "10", T, 32), atol=0)
    few = nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, n_train=50, n_test=2))
    assert few.train.num_events == 4  # up to n_train before the test set


def test_case_is_the_index_without_a_number_in_the_name(tmp_path):
    for name in ("alpha", "beta", "gamma"):
        nowcastnet.write_case(tmp_path, name, _rain(0))
    data = nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, n_test=1))
    np.testing.assert_array_equal(data.train.case, [0, 1])
    np.testing.assert_array_equal(data.test.case, [2])


# -- errors: one line naming the case and the frame, and the fix ---------------------------------------------
def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_8_bit_png_is_refused(tmp_path):
    nowcastnet.write_case(tmp_path, "4", _rain(0))
    _write_pixels(tmp_path / "4", "4-02.png", np.zeros((SIDE, SIDE), np.uint8))
    with pytest.raises(DataFormatError) as error:
        nowcastnet.read_case(tmp_path / "4", T)
    message = _one_line(error)
    assert "case 4" in message and "4-02.png" in message and "8-bit" in message and "16 bits" in message


def test_an_unreadable_png_is_refused(tmp_path):
    nowcastnet.write_case(tmp_path, "4", _rain(0))
    (tmp_path / "4" / "4-01.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="4-01.png is not a readable PNG") as error:
        nowcastnet.read_case(tmp_path / "4", T)
    _one_line(error)


def test_a_missing_frame_is_refused(tmp_path):
    nowcastnet.write_case(tmp_path, "6", _rain(0, n_frames=T - 2))
    with pytest.raises(DataFormatError) as error:
        nowcastnet.read_case(tmp_path / "6", T)
    message = _one_line(error)
    assert f"frame 6-{T - 2:02d}.png is missing" in message and "data.n_targets" in message


def test_a_frame_of_another_size_is_refused(tmp_path):
    nowcastnet.write_case(tmp_path, "8", _rain(0))
    _write_pixels(tmp_path / "8", "8-03.png", np.zeros((SIDE, 40), np.uint16))
    with pytest.raises(DataFormatError) as error:
        nowcastnet.read_case(tmp_path / "8", T, size=32)
    message = _one_line(error)
    assert "case 8" in message and "8-03.png is 48 x 40" in message and "same size" in message


def test_frames_smaller_than_data_size_are_refused(tmp_path):
    nowcastnet.write_case(tmp_path, "9", _rain(0))
    nowcastnet.write_case(tmp_path, "10", _rain(1))
    with pytest.raises(DataFormatError) as error:
        nowcastnet.read_dataset(tmp_path, dataclasses.replace(DATA, size=64, n_test=1, n_train=1))
    message = _one_line(error)
    assert "case 9" in message and "9-00.png" in message and "smaller than data.size=64" in message
    assert "data.size=48" in message


def test_crop_none_needs_frames_of_data_size(tmp_path):
    nowcastnet.write_case(tmp_path, "9", _rain(0))
    with pytest.raises(DataFormatError, match="data.crop=center") as error:
        nowcastnet.read_case(tmp_path / "9", T, size=32, crop="none")
    _one_line(error)
    assert nowcastnet.read_case(tmp_path / "9", T, size=SIDE, crop="none").shape == (T, SIDE, SIDE)


def test_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(DataFormatError, match="holds no case folders") as error:
        nowcastnet.read_dataset(tmp_path, DATA)
    _one_line(error)
    with pytest.raises(DataFormatError, match="no such directory"):
        nowcastnet.find_cases(tmp_path / "absent")


def test_a_folder_that_is_not_a_case_is_refused(tmp_path):
    nowcastnet.write_case(tmp_path, "1", _rain(0))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    (tmp_path / ".hidden").mkdir()  # hidden folders are ignored
    with pytest.raises(DataFormatError) as error:
        nowcastnet.find_cases(tmp_path)
    message = _one_line(error)
    assert "notes is not a NowcastNet case folder" in message and "notes-00.png" in message
    with pytest.raises(DataFormatError, match="not a NowcastNet case folder"):
        nowcastnet.read_case(tmp_path / "notes", T)


def test_too_few_cases_for_the_test_set_are_refused(tmp_path):
    for case in (1, 2):
        nowcastnet.write_case(tmp_path, str(case), _rain(case))
    with pytest.raises(DataFormatError, match="data.n_test <= 1") as error:
        nowcastnet.read_dataset(tmp_path, DATA)
    _one_line(error)
    nowcastnet.write_case(tmp_path / "one", "1", _rain(1))
    with pytest.raises(DataFormatError, match="add cases"):
        nowcastnet.read_dataset(tmp_path / "one", dataclasses.replace(DATA, n_test=1))
    nowcastnet.write_dataset(tmp_path / "split", NowcastData(_events([1], [1]), _events([2], [2])))
    with pytest.raises(DataFormatError, match="data.n_test=1"):
        nowcastnet.read_dataset(tmp_path / "split", DATA)
