"""Project a posed walker and rasterise it, anti-aliased, straight into OpenGait-aligned frames.

Every primitive projects orthographically to a closed-form 2D shape: a capsule to a stadium, an
ellipsoid to an ellipse. Their signed distances (in pixels) are evaluated only inside each
primitive's bounding box over the whole batch of frames, merged with a minimum, and turned into
coverage ``clip(0.5 - d, 0, 1)``, which gives grey edges like a resized binary mask.

Alignment follows OpenGait's pretreatment: the body's vertical extent (known analytically) is scaled
to the full frame height, then the frame is centred on the first column where the cumulative column
sum passes half of the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.data.synth._kinematics import Scene

_FAR = np.float32(1e4)
_MARGIN = 3  # canvas columns left free on each side of the body, so edge pixels stay anti-aliased


@dataclass(frozen=True)
class Projected:
    """The scene on screen (world units, ``v`` up): stadiums ``a, b [f, k, 2]``, ``r [f, k]``; ellipses ``c [f, e, 2]``, ``s [f, e, 2, 2]``."""

    cap_a: np.ndarray
    cap_b: np.ndarray
    cap_r: np.ndarray
    ell_c: np.ndarray
    ell_s: np.ndarray


@dataclass(frozen=True)
class Alignment:
    """Per-frame map from screen to aligned pixels: ``row = (top - v) * scale``."""

    top: np.ndarray
    scale: np.ndarray

    def rows(self, v: np.ndarray) -> np.ndarray:
        """Aligned rows (continuous, 0 = top edge) of screen heights ``v [f, ...]``."""
        shape = (-1,) + (1,) * (v.ndim - 1)
        return (self.top.reshape(shape) - v) * self.scale.reshape(shape)


def view_basis(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Screen axes ``[2, 3]`` (right, up) for a camera at ``azimuth`` (0: walker approaching, 90: side, 180: leaving)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    right = np.array([np.sin(az), 0.0, -np.cos(az)])
    up = np.array([-np.sin(el) * np.cos(az), np.cos(el), -np.sin(el) * np.sin(az)])
    return np.stack([right, up])


def project(scene: Scene, basis: np.ndarray) -> Projected:
    """Orthographic projection of every primitive onto the screen spanned by ``basis [2, 3]``."""
    return Projected(
        cap_a=scene.cap_a @ basis.T,
        cap_b=scene.cap_b @ basis.T,
        cap_r=scene.cap_r,
        ell_c=scene.ell_c @ basis.T,
        ell_s=basis @ scene.ell_m @ basis.T,
    )


def _extent(proj: Projected, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (low, high) of the whole body along screen ``axis`` (0: u, 1: v)."""
    ends = np.stack([proj.cap_a[..., axis], proj.cap_b[..., axis]])
    half = np.sqrt(proj.ell_s[..., axis, axis])
    low = np.minimum((ends.min(axis=0) - proj.cap_r).min(axis=1), (proj.ell_c[..., axis] - half).min(axis=1))
    high = np.maximum((ends.max(axis=0) + proj.cap_r).max(axis=1), (proj.ell_c[..., axis] + half).max(axis=1))
    return low, high


def _band(low: np.ndarray, high: np.ndarray, limit: int) -> tuple[int, int]:
    """Whole pixel range covering ``[low, high]`` over all frames, clipped to ``[0, limit)``."""
    return max(0, int(np.floor(low.min())) - 1), min(limit, int(np.ceil(high.max())) + 1)


class Canvas:
    """Signed distances ``[f, h, w]`` (pixels, negative inside) of a batch of frames being drawn.

    Shapes are evaluated over whole-width row bands, so that every array operation runs over long
    contiguous rows. Both shapes' distances are low-degree polynomials of the pixel position, so
    their per-frame coefficients meet a fixed polynomial basis of the pixel grid in one matrix product.
    """

    def __init__(self, frames: int, height: int, width: int) -> None:
        self.dist = np.full((frames, height, width), _FAR, dtype=np.float32)
        self.frames, self.height, self.width = frames, height, width
        ys, xs = np.divmod(np.arange(height * width, dtype=np.float32), np.float32(width))
        xs += np.float32(0.5)
        ys += np.float32(0.5)
        # Basis rows: x, y, 1 (linear, stadiums) and x^2, x*y, y^2 (quadratic, ellipses).
        self._basis = np.stack([xs, ys, np.ones_like(xs), xs * xs, xs * ys, ys * ys])
        # numpy's maximum against a scalar is far slower than against an array: keep a row of zeros.
        self._zeros = np.zeros(height * width, dtype=np.float32)

    def _rows(self, low: np.ndarray, high: np.ndarray) -> tuple[int, int]:
        return _band(low, high, self.height)

    def _merge(self, rows: tuple[int, int], dist: np.ndarray) -> None:
        view = self.dist[:, rows[0] : rows[1], :].reshape(self.frames, -1)
        np.minimum(view, dist, out=view)

    def stadium(self, a: np.ndarray, b: np.ndarray, r: np.ndarray) -> None:
        """Union with stadiums: segment ``a -> b [f, 2]`` (x, y pixels) thickened by ``r [f]``."""
        rows = self._rows(np.minimum(a[:, 1], b[:, 1]) - r, np.maximum(a[:, 1], b[:, 1]) + r)
        if rows[0] >= rows[1]:
            return
        n = self.frames
        ba = b - a
        length = np.hypot(ba[:, 0], ba[:, 1])
        # A zero-length segment is a disc: any axis will do.
        unit = np.where(length[:, None] > 1e-9, ba / np.maximum(length, 1e-9)[:, None], [1.0, 0.0])
        mid = 0.5 * (a + b)
        # Coordinates of p across the segment's axis and along it (from the midpoint): both linear in p.
        coef = np.empty((2 * n, 3))
        coef[:n, 0], coef[:n, 1] = unit[:, 1], -unit[:, 0]
        coef[:n, 2] = -(mid[:, 0] * unit[:, 1] - mid[:, 1] * unit[:, 0])
        coef[n:, 0:2] = unit
        coef[n:, 2] = -(mid * unit).sum(axis=1)
        lo, hi = rows[0] * self.width, rows[1] * self.width
        both = np.matmul(coef.astype(np.float32), self._basis[:3, lo:hi])
        across, along = both[:n], both[n:]
        # Past either end the distance grows along the axis too: sqrt(across^2 + max(|along| - L/2, 0)^2).
        np.abs(along, out=along)
        along -= (0.5 * length).astype(np.float32)[:, None]
        np.maximum(along, self._zeros[None, : hi - lo], out=along)
        along *= along
        across *= across
        across += along
        np.sqrt(across, out=across)
        across -= r.astype(np.float32)[:, None]
        self._merge(rows, across)

    def ellipse(self, c: np.ndarray, s: np.ndarray) -> None:
        """Union with ellipses ``{p: (p - c)^T s^-1 (p - c) <= 1}``: centres ``c [f, 2]``, ``s [f, 2, 2]`` in pixels."""
        half_y = np.sqrt(s[:, 1, 1])
        rows = self._rows(c[:, 1] - half_y, c[:, 1] + half_y)
        if rows[0] >= rows[1]:
            return
        n = self.frames
        det = s[:, 0, 0] * s[:, 1, 1] - s[:, 0, 1] * s[:, 1, 0]
        qxx, qyy, qxy = s[:, 1, 1] / det, s[:, 0, 0] / det, -s[:, 0, 1] / det
        cx, cy = c[:, 0], c[:, 1]
        # Rows of coef: the implicit value q(p - c) - 1, then its half-gradient Q (p - c), per frame.
        coef = np.zeros((3 * n, 6))
        coef[:n, 3], coef[:n, 4], coef[:n, 5] = qxx, 2.0 * qxy, qyy
        coef[:n, 0] = -2.0 * (qxx * cx + qxy * cy)
        coef[:n, 1] = -2.0 * (qxy * cx + qyy * cy)
        coef[:n, 2] = qxx * cx * cx + 2.0 * qxy * cx * cy + qyy * cy * cy - 1.0
        coef[n : 2 * n, 0], coef[n : 2 * n, 1], coef[n : 2 * n, 2] = qxx, qxy, -(qxx * cx + qxy * cy)
        coef[2 * n :, 0], coef[2 * n :, 1], coef[2 * n :, 2] = qxy, qyy, -(qxy * cx + qyy * cy)
        basis = self._basis[:, rows[0] * self.width : rows[1] * self.width]
        terms = np.matmul(coef.astype(np.float32), basis)
        value, gx, gy = terms[:n], terms[n : 2 * n], terms[2 * n :]
        # Implicit value over gradient length: the signed distance to first order, exact enough near the edge.
        gx *= gx
        gy *= gy
        gx += gy
        np.sqrt(gx, out=gx)
        gx *= np.float32(2.0)
        gx += np.float32(1e-6)
        value /= gx
        self._merge(rows, value)

    def discs(self, frame: np.ndarray, centre: np.ndarray, radius: np.ndarray, add: bool) -> None:
        """Add (``add``) or cut out small discs, one per entry of ``frame [k]``: segmentation blobs and holes."""
        if frame.size == 0:
            return
        reach = int(np.ceil(radius.max())) + 1
        offsets = np.arange(-reach, reach + 1)
        base = np.floor(centre).astype(np.int64)
        ys = base[:, 1, None, None] + offsets[None, :, None]
        xs = base[:, 0, None, None] + offsets[None, None, :]
        ys, xs = np.broadcast_arrays(ys, xs)
        inside = (ys >= 0) & (ys < self.height) & (xs >= 0) & (xs < self.width)
        d = np.hypot(xs + 0.5 - centre[:, 0, None, None], ys + 0.5 - centre[:, 1, None, None]) - radius[:, None, None]
        index = (np.broadcast_to(frame[:, None, None], ys.shape)[inside], ys[inside], xs[inside])
        values = d[inside].astype(np.float32)
        if add:
            np.minimum.at(self.dist, index, values)
        else:
            np.maximum.at(self.dist, index, -values)

    def to_uint8(self) -> np.ndarray:
        """Coverage as ``uint8 [f, h, w]`` (0..255): ``255 * clip(0.5 - d, 0, 1)``, rounded."""
        d = self.dist.reshape(self.frames, -1)
        # 255 * (0.5 - d) + 0.5 for rounding, clipped to [0, 255.5) and truncated.
        d *= np.float32(-255.0)
        d += np.float32(128.0)
        zeros = self._zeros[None, :]
        np.maximum(d, zeros, out=d)
        np.minimum(d, zeros + np.float32(255.25), out=d)
        return self.dist.astype(np.uint8)


def draw_aligned(proj: Projected, size: int) -> tuple[Canvas, Alignment, np.ndarray]:
    """Draw the body so its height fills ``size`` rows; returns the canvas, the alignment and pixel anchors.

    The anchors ``[f, k, 2]`` are the stadium end points in canvas pixels (x, y), used to place noise.
    """
    bottom, top = _extent(proj, 1)
    left, right = _extent(proj, 0)
    scale = size / (top - bottom)
    width = int(np.ceil(((right - left) * scale).max())) + 2 * _MARGIN
    canvas = Canvas(proj.cap_r.shape[0], size, width)

    def to_pixels(p: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (p.ndim - 2)
        x = (p[..., 0] - left.reshape(shape)) * scale.reshape(shape) + _MARGIN
        y = (top.reshape(shape) - p[..., 1]) * scale.reshape(shape)
        return np.stack([x, y], axis=-1)

    cap_a, cap_b = to_pixels(proj.cap_a), to_pixels(proj.cap_b)
    cap_r = proj.cap_r * scale[:, None]
    for k in range(cap_a.shape[1]):
        canvas.stadium(cap_a[:, k], cap_b[:, k], cap_r[:, k])
    ell_c = to_pixels(proj.ell_c)
    # The screen's v axis points up and rows point down: flip the off-diagonal terms.
    flip = np.array([[1.0, -1.0], [-1.0, 1.0]])
    ell_s = proj.ell_s * flip * (scale**2)[:, None, None, None]
    for e in range(ell_c.shape[1]):
        canvas.ellipse(ell_c[:, e], ell_s[:, e])
    anchors = np.concatenate([cap_a, cap_b], axis=1)
    return canvas, Alignment(top=top, scale=scale), anchors


def segmentation_noise(canvas: Canvas, anchors: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    """Imperfect background subtraction: edges eroded or dilated, small blobs stuck on and holes punched in."""
    frames = canvas.frames
    unit = canvas.height / 64.0  # noise sizes are set at the 64-row scale
    bias = rng.normal(0.0, 0.25 * strength) + rng.normal(0.0, 0.15 * strength, size=frames)
    canvas.dist += (bias * unit).astype(np.float32)[:, None, None]
    # Blobs sit near the outline, holes inside the limbs and trunk; both are placed around joints.
    for rate, spread, radii, add in ((0.6, 2.5, (0.6, 2.0), True), (0.35, 0.8, (0.5, 1.4), False)):
        frame = np.repeat(np.arange(frames), rng.poisson(rate * strength, size=frames))
        anchor = anchors[frame, rng.integers(anchors.shape[1], size=frame.size)]
        centre = anchor + rng.normal(0.0, spread * unit, size=(frame.size, 2))
        radius = rng.uniform(radii[0], radii[1], size=frame.size) * unit
        canvas.discs(frame, centre, radius, add)


def centre_columns(image: np.ndarray, size: int) -> np.ndarray:
    """OpenGait's horizontal alignment of ``image [f, size, w]``: ``size`` columns centred on the half-mass column."""
    frames, height, width = image.shape
    csum = image.sum(axis=1, dtype=np.int64).cumsum(axis=1)
    centre = np.argmax(csum > csum[:, -1:] / 2.0, axis=1)
    out = np.zeros((frames, height, size), dtype=np.uint8)
    half = size // 2
    for f in range(frames):
        left = int(centre[f]) - half
        src0, src1 = max(0, left), min(width, left + size)
        out[f, :, src0 - left : src1 - left] = image[f, :, src0:src1]
    return out
