"""The rasteriser: anti-aliased coverage of stadiums and ellipses matches their true areas."""

from __future__ import annotations

import numpy as np

from workbench.data.synth._raster import Canvas, centre_columns


def _coverage(canvas: Canvas) -> np.ndarray:
    return canvas.to_uint8().astype(np.float64) / 255.0


def test_stadium_area_and_symmetry() -> None:
    canvas = Canvas(frames=2, height=64, width=64)
    a = np.array([[20.0, 10.0], [30.3, 40.7]])
    b = np.array([[44.0, 50.0], [30.3, 40.7]])  # the second is a zero-length segment: a disc
    r = np.array([4.5, 6.2])
    canvas.stadium(a, b, r)
    area = _coverage(canvas).sum(axis=(1, 2))
    length = np.hypot(*(b - a).T)
    expected = 2 * r * length + np.pi * r**2
    assert np.allclose(area, expected, rtol=0.01)


def test_ellipse_area_rotated() -> None:
    canvas = Canvas(frames=1, height=64, width=64)
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    axes = np.array([14.0, 6.0])
    shape = rot @ np.diag(axes**2) @ rot.T
    canvas.ellipse(np.array([[32.0, 31.0]]), shape[None])
    coverage = _coverage(canvas)[0]
    assert abs(coverage.sum() - np.pi * axes.prod()) < 0.01 * np.pi * axes.prod()
    # Grey only along the outline: fully inside at the centre, empty far away.
    assert coverage[31, 32] == 1.0 and coverage[0, 0] == 0.0


def test_union_takes_the_nearer_shape() -> None:
    canvas = Canvas(frames=1, height=32, width=32)
    canvas.stadium(np.array([[8.0, 16.0]]), np.array([[24.0, 16.0]]), np.array([3.0]))
    alone = _coverage(canvas).sum()
    canvas = Canvas(frames=1, height=32, width=32)
    canvas.stadium(np.array([[8.0, 16.0]]), np.array([[24.0, 16.0]]), np.array([3.0]))
    canvas.stadium(np.array([[8.0, 16.0]]), np.array([[24.0, 16.0]]), np.array([2.0]))
    assert np.isclose(_coverage(canvas).sum(), alone)


def test_centre_columns_puts_half_the_mass_left_of_the_middle() -> None:
    image = np.zeros((1, 8, 40), dtype=np.uint8)
    image[0, :, 5:9] = 255
    out = centre_columns(image, 16)
    assert out.shape == (1, 8, 16)
    csum = out[0].sum(axis=0, dtype=np.int64).cumsum()
    assert int(np.argmax(csum > csum[-1] / 2)) == 8
    assert out.sum() == image.sum()
