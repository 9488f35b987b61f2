"""The official PCA and whitening against the formula of winners_facts.md 6.2 on random files
of the official shapes, the loader's errors, and the two quantisers (6.3, 7.3) and their inverse."""

import numpy as np
import pytest

from y8m.data import specs
from y8m.errors import UsageError
from y8m.extract import pca, standins


def _write_official(folder, seed=0):
    return standins.write_inception_pca(str(folder), seed)


def test_pca_matches_the_official_formula(tmp_path):
    files = _write_official(tmp_path)
    transform = pca.load_inception_pca(str(tmp_path))
    x = np.random.default_rng(1).uniform(0, 2, (5, 2048)).astype(np.float32)
    out = transform(x)
    assert out.shape == (5, 1024) and out.dtype == np.float32
    # The official apply_pca, frame by frame, on the files as released.
    mean = files["mean.npy"][:, 0].astype(np.float64)
    eigenvals = files["eigenvals.npy"][:1024, 0].astype(np.float64)
    eigenvecs = files["eigenvecs.npy"].T[:, :1024].astype(np.float64)
    for row, features in zip(out, x):
        expected = (features - mean).reshape(1, 2048).dot(eigenvecs).reshape(1024)
        expected /= np.sqrt(eigenvals + 1e-4)
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-5)
    # One frame alone gives the same numbers as inside a batch.
    np.testing.assert_array_equal(transform(x[2:3]), out[2:3])
    assert transform(x[0]).shape == (1024,)


def test_missing_or_misshapen_files_are_usage_errors_naming_them(tmp_path):
    with pytest.raises(UsageError, match="yt8m_pca.tgz"):
        pca.load_inception_pca(str(tmp_path / "nowhere"))
    files = _write_official(tmp_path)
    for name in pca.FILE_SHAPES:
        (tmp_path / name).rename(tmp_path / "aside")
        with pytest.raises(UsageError, match=rf"missing .*{name}.*yt8m_pca\.tgz"):
            pca.load_inception_pca(str(tmp_path))
        (tmp_path / "aside").rename(tmp_path / name)
    wrong = {
        "mean.npy": files["mean.npy"][:, 0],  # (2048,) instead of (2048, 1)
        "eigenvals.npy": files["eigenvals.npy"][:1024],
        "eigenvecs.npy": files["eigenvecs.npy"][:, :1024],
    }
    for name, array in wrong.items():
        np.save(tmp_path / name, array)
        with pytest.raises(UsageError) as caught:
            pca.load_inception_pca(str(tmp_path))
        message = str(caught.value)
        assert name in message and str(pca.FILE_SHAPES[name]) in message and "\n" not in message
        np.save(tmp_path / name, files[name])
    pca.load_inception_pca(str(tmp_path))  # restored: loads again


def test_unsafe_or_broken_files_are_refused(tmp_path):
    files = _write_official(tmp_path)
    np.save(tmp_path / "mean.npy", np.array([{"a": 1}] * 2048, dtype=object).reshape(2048, 1))
    with pytest.raises(UsageError, match="mean.npy"):  # object arrays need pickle: refused
        pca.load_inception_pca(str(tmp_path))
    (tmp_path / "mean.npy").write_bytes(b"not an npy file")
    with pytest.raises(UsageError, match="cannot read .*mean.npy"):
        pca.load_inception_pca(str(tmp_path))
    np.save(tmp_path / "mean.npy", files["mean.npy"])
    bad = files["eigenvals.npy"].copy()
    bad[3] = np.nan
    np.save(tmp_path / "eigenvals.npy", bad)
    with pytest.raises(UsageError, match="NaN"):
        pca.load_inception_pca(str(tmp_path))
    np.save(tmp_path / "eigenvals.npy", -files["eigenvals.npy"])
    with pytest.raises(UsageError, match="negative"):
        pca.load_inception_pca(str(tmp_path))


def test_quantisers_round_and_floor():
    f = np.array([-3.0, -2.0, -1.0, 0.0, 0.0079, 0.01, 1.99, 2.0, 5.0])
    steps = (np.clip(f, -2, 2) + 2) * 255 / 4
    np.testing.assert_array_equal(pca.quantize_round(f), np.round(steps).astype(np.uint8))
    np.testing.assert_array_equal(pca.quantize_floor(f), np.floor(steps).astype(np.uint8))
    np.testing.assert_array_equal(pca.quantize_round(f), specs.quantize(f))
    assert pca.quantize_round(f).dtype == pca.quantize_floor(f).dtype == np.uint8
    assert pca.quantize_round(f)[[0, -1]].tolist() == [0, 255]
    assert pca.quantize_floor(f)[[0, -1]].tolist() == [0, 255]
    # 0.005 is 127.82 steps: rounds up, truncates down.
    assert pca.quantize_round(0.005) == 128 and pca.quantize_floor(0.005) == 127
    assert pca.dequantize is specs.dequantize


def test_dequantize_inverts_both_quantisers_within_one_step():
    f = np.random.default_rng(2).uniform(-2, 2, 100_000)
    step, half_bin = 4 / 255, 4 / 512  # the dequantiser's bias is range / 512
    for quantize, bound in (
        (pca.quantize_round, step / 2 + half_bin),
        (pca.quantize_floor, step - half_bin),
    ):
        error = pca.dequantize(quantize(f)) - f
        assert np.abs(error).max() <= bound + 1e-6 and bound < step
    # The half-bin bias centres floor codes; round codes come back half a bin high on average.
    assert abs(np.mean(pca.dequantize(pca.quantize_floor(f)) - f)) < 1e-3
    assert np.mean(pca.dequantize(pca.quantize_round(f)) - f) == pytest.approx(half_bin, abs=1e-3)
