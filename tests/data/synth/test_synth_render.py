"""render_sequence: shapes, anti-aliasing, alignment, determinism, and what bag, coat and view change."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.synth import (
    BOUNDARY_NAMES,
    SubjectParams,
    SynthConfig,
    render_dataset_sequence,
    render_sequence,
    sample_subject,
    subject_rng,
)


def _subject(number: int = 1, **changes: object) -> SubjectParams:
    import dataclasses

    return dataclasses.replace(sample_subject(subject_rng(0, number)), **changes)  # type: ignore[arg-type]


def _render(subject: SubjectParams, seq_type: str = "nm-01", view: float = 90, frames: int = 24,
            seed: int = 5, **options: float) -> np.ndarray:  # fmt: skip
    return render_sequence(subject, seq_type, view, frames, np.random.default_rng(seed), **options).silhouettes


def _widths(silhouettes: np.ndarray) -> np.ndarray:
    """Foreground pixels per row, mean over frames: ``[rows]``."""
    return (silhouettes >= 128).sum(axis=2).mean(axis=0)


def _spans(silhouettes: np.ndarray) -> np.ndarray:
    """Columns from the first to the last foreground pixel per row, mean over frames: ``[rows]``."""
    mask = silhouettes >= 128
    first = mask.argmax(axis=2)
    last = mask.shape[2] - 1 - mask[:, :, ::-1].argmax(axis=2)
    return np.where(mask.any(axis=2), last - first + 1, 0).mean(axis=0)


@pytest.mark.parametrize("size", [64, 128])
def test_shape_dtype_and_grey_edges(size: int) -> None:
    seq = render_sequence(_subject(), "nm-01", 54, 20, np.random.default_rng(0), size=size)
    assert seq.silhouettes.shape == (20, size, size)
    assert seq.silhouettes.dtype == np.uint8
    assert seq.boundary_rows.shape == (20, len(BOUNDARY_NAMES))
    values = seq.silhouettes
    # Anti-aliased: every frame's outline (a few hundred pixels long at 64x64) is drawn in grey levels.
    grey = ((values > 0) & (values < 255)).sum(axis=(1, 2))
    assert grey.min() > size * 1.5
    assert len(np.unique(values)) > 100
    assert (values == 255).any() and (values == 0).any()


def test_aligned_like_opengait_pretreatment() -> None:
    frames = _render(_subject(2), view=90, frames=16, noise=0.0)
    for frame in frames:
        rows = np.flatnonzero(frame.sum(axis=1))
        # The body spans the full height: the top and bottom rows are touched.
        assert rows[0] == 0 and rows[-1] == 63
        # Centred on the column where the cumulative column sum passes half of the total.
        csum = frame.sum(axis=0, dtype=np.int64).cumsum()
        assert int(np.argmax(csum > csum[-1] / 2)) == 32


def test_same_generator_state_gives_same_bytes() -> None:
    subject = _subject(3)
    first = _render(subject, "bg-01", 36, seed=11)
    assert np.array_equal(first, _render(subject, "bg-01", 36, seed=11))
    assert not np.array_equal(first, _render(subject, "bg-01", 36, seed=12))


def test_boundaries_ordered_top_to_bottom_inside_frame() -> None:
    for number, view in ((1, 0), (2, 90), (3, 162)):
        rows = render_sequence(_subject(number), "nm-02", view, 30, np.random.default_rng(number)).boundary_rows
        assert np.all(np.diff(rows, axis=1) > 0), "neck < shoulders < hips < knees < ankles"
        assert rows.min() > 0 and rows.max() < 64


def test_boundaries_follow_body_proportions() -> None:
    base = _subject(4)
    long_legs = _subject(4, thigh_length=base.thigh_length * 1.3, shin_length=base.shin_length * 1.3)
    def mean_rows(subject: SubjectParams) -> np.ndarray:
        return render_sequence(subject, "nm-01", 90, 20, np.random.default_rng(0), noise=0.0).boundary_rows.mean(axis=0)
    hips = BOUNDARY_NAMES.index("hips")
    # Longer legs take a larger share of the aligned height: the hips move up.
    assert mean_rows(long_legs)[hips] < mean_rows(base)[hips] - 2


def test_coat_widens_rows_between_hips_and_knees() -> None:
    subject = _subject(5)
    seq = render_sequence(subject, "nm-01", 90, 30, np.random.default_rng(3), noise=0.0)
    coat = _render(subject, "cl-01", 90, frames=30, seed=3, noise=0.0)
    hips, knees = seq.boundary_rows[:, 2:4].mean(axis=0)
    band = slice(int(np.ceil(hips)) + 1, int(knees))
    assert _widths(coat)[band].mean() > _widths(seq.silhouettes)[band].mean() + 1.0
    # The head is the same walker, just rescaled: no coat there.
    assert abs(_widths(coat)[:4].mean() - _widths(seq.silhouettes)[:4].mean()) < 2.0


@pytest.mark.parametrize("kind", ["backpack", "shoulder", "hand"])
def test_bag_adds_area_at_the_trunk_not_the_head(kind: str) -> None:
    subject = _subject(6, bag_kind=kind)
    plain = _render(subject, "nm-01", 72, frames=30, seed=8, noise=0.0)
    bag = _render(subject, "bg-01", 72, frames=30, seed=8, noise=0.0)
    extra = _widths(bag) - _widths(plain)
    assert extra[12:60].sum() > 8.0
    assert abs(extra[:5]).sum() < 0.5 * extra[12:60].sum()


def test_views_change_the_width_profile() -> None:
    subject = _subject(7)
    front = _spans(_render(subject, view=0, frames=40, noise=0.0))
    side = _spans(_render(subject, view=90, frames=40, noise=0.0))
    # Seen from the front the shoulders are wide; from the side the striding legs are.
    assert front[12:18].mean() > side[12:18].mean() + 2
    assert side[50:60].mean() > front[50:60].mean() + 2


def test_noise_adds_segmentation_errors_and_zero_turns_them_off() -> None:
    subject = _subject(8)
    clean = _render(subject, frames=30, seed=1, noise=0.0)
    again = _render(subject, frames=30, seed=1, noise=0.0)
    noisy = _render(subject, frames=30, seed=1, noise=2.0)
    assert np.array_equal(clean, again)
    assert noisy.shape == clean.shape
    assert np.abs(noisy.astype(int) - clean.astype(int)).sum() > 1000


def test_jitter_zero_repeats_the_subject_exactly() -> None:
    subject = _subject(9)
    a = render_sequence(subject, "nm-01", 90, 12, np.random.default_rng(1), noise=0.0, jitter=0.0)
    b = render_sequence(subject, "nm-01", 90, 12, np.random.default_rng(2), noise=0.0, jitter=0.0)
    # Only the start phase differs: the boundary rows, averaged over whole strides, barely move.
    assert np.allclose(a.boundary_rows.mean(axis=0), b.boundary_rows.mean(axis=0), atol=1.0)


def test_dataset_sequences_are_reproducible_alone() -> None:
    config = SynthConfig.tiny()
    seq = render_dataset_sequence(config, 2, "cl-01", 90)
    assert config.frames[0] <= len(seq.silhouettes) <= config.frames[1]
    assert np.array_equal(seq.silhouettes, render_dataset_sequence(config, 2, "cl-01", 90).silhouettes)
    other_seed = render_dataset_sequence(config.replace(seed=1), 2, "cl-01", 90)
    assert not np.array_equal(seq.silhouettes[:5], other_seed.silhouettes[:5])


def test_bad_arguments() -> None:
    subject = _subject()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown sequence type 'run-01'"):
        render_sequence(subject, "run-01", 90, 10, rng)
    with pytest.raises(ValueError, match="frames"):
        render_sequence(subject, "nm-01", 90, 0, rng)
    with pytest.raises(ValueError, match="size"):
        render_sequence(subject, "nm-01", 90, 10, rng, size=100)
    with pytest.raises(ValueError, match="view"):
        render_sequence(subject, "nm-01", 270, 10, rng)
    with pytest.raises(ValueError, match="subject"):
        render_dataset_sequence(SynthConfig.tiny(), 9, "nm-01", 90)
