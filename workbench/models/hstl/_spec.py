"""``HSTLSpec``: everything that decides an HSTL network's shape, with validation and tree building."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Protocol

from workbench.hierarchy import PAPER_CUTS
from workbench.models._family import SpecError, SpecFields, check_split

#: The HSTL paper's CASIA-B widths ``[stem, stage1, stage2]``: what ``from_splits`` builds by default, and
#: what ``workbench cost`` and ``workbench export`` cut a tree with, so their figures are the paper model's.
#: Training and studies use ``SMALL_CHANNELS`` (CPU-sized) instead, on purpose.
PAPER_CHANNELS: tuple[int, ...] = (32, 64, 128)


class _CutTree(Protocol):
    """What ``from_tree`` needs of a partition tree."""

    n_rows: int

    def cut(self, k: int) -> list[int]: ...


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One HSTL stage: two ARME convs over ``split`` regions, an ASTP, and optionally FTA + ASTP.

    ``channels``: output channels of the two ARME convs; ``split``: region heights at this stage's
    feature height (top to bottom); ``fta``: add an FTA (time shrinks to ~1/3) and a second ASTP on
    its output; ``project``: the ASTP has a 1x1 projection to ``HSTLSpec.astp_channels``.
    """

    channels: tuple[int, int]
    split: tuple[int, ...]
    fta: bool = False
    project: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "split", tuple(int(s) for s in self.split))


@dataclasses.dataclass(frozen=True)
class HSTLSpec(SpecFields):
    """A complete HSTL architecture; ``parts`` is derived, never typed by hand.

    Order of blocks: stem convs (each followed by LeakyReLU), ASTP over ``first_split``, then per
    stage: a MaxPool3d (1, 2, 2) when its index is in ``downsample_before``, two ARME convs, ASTP,
    and FTA + ASTP when ``stage.fta``; finally a temporal max and GeM over ``hpp_rows`` strips.
    ``hpp_rows=None`` means one strip per row of the last stage.
    """

    stages: tuple[StageSpec, ...]
    in_channels: int = 1
    stem_channels: tuple[int, ...] = (32,)
    first_split: tuple[int, ...] = (64,)
    first_project: bool = True
    downsample_before: tuple[int, ...] = ()
    astp_channels: int = 128
    hpp_rows: int | None = None
    num_classes: int = 74

    def __post_init__(self) -> None:
        stages = tuple(s if isinstance(s, StageSpec) else StageSpec(**s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        for name in ("stem_channels", "first_split", "downsample_before"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()
        if self.hpp_rows == self.final_height:
            # One strip per row is the default; normalising keeps equal specs equal.
            object.__setattr__(self, "hpp_rows", None)

    # -- derived sizes -------------------------------------------------------------------------

    @property
    def input_height(self) -> int:
        """Silhouette height the spec is built for (the first split's sum)."""
        return sum(self.first_split)

    def stage_heights(self, input_height: int | None = None) -> list[int]:
        """Feature height at each stage (after any downsampling before it)."""
        height = self.input_height if input_height is None else input_height
        heights = []
        for index in range(len(self.stages)):
            if index in self.downsample_before:
                height //= 2
            heights.append(height)
        return heights

    @property
    def final_height(self) -> int:
        """Feature height of the last stage."""
        heights = self.stage_heights()
        return heights[-1] if heights else self.input_height

    @property
    def strips(self) -> int:
        """Number of horizontal strips the final GeM pooling produces."""
        return self.final_height if self.hpp_rows is None else self.hpp_rows

    @property
    def parts(self) -> int:
        """Total feature parts: every ASTP region plus the final strips."""
        total = len(self.first_split)
        for stage in self.stages:
            total += len(stage.split) * (2 if stage.fta else 1)
        return total + self.strips

    @property
    def out_channels(self) -> int:
        """Channels of every part feature (the ASTP output width)."""
        return self.astp_channels

    def split_lists(self) -> dict[str, list[int]]:
        """Split list per block, for logging: ``{"astp1": [64], "stage2": [40, 24], ...}``."""
        lists = {"astp1": list(self.first_split)}
        for index, stage in enumerate(self.stages):
            lists[f"stage{index + 2}"] = list(stage.split)
        return lists

    # -- validation ---------------------------------------------------------------------------

    def validate(self, input_height: int | None = None) -> HSTLSpec:
        """Check the spec fits ``input_height`` rows (default: its own); raise ``SpecError`` if not."""
        height = self.input_height if input_height is None else int(input_height)
        if self.in_channels < 1:
            raise SpecError(f"in_channels={self.in_channels}: must be >= 1 (1 for silhouettes)")
        if len(self.stem_channels) not in (1, 2) or min(self.stem_channels) < 1:
            raise SpecError(f"stem_channels={list(self.stem_channels)}: give one or two positive channel counts, e.g. [32]")
        if self.astp_channels < 1 or self.num_classes < 1:
            raise SpecError(f"astp_channels={self.astp_channels}, num_classes={self.num_classes}: both must be >= 1")
        if not self.stages:
            raise SpecError("stages is empty: give at least one stage with channels and a split list")
        check_split(self.first_split, height, "first_split")
        bad = [i for i in self.downsample_before if not 0 <= i < len(self.stages)]
        if bad or len(set(self.downsample_before)) != len(self.downsample_before):
            raise SpecError(
                f"downsample_before={list(self.downsample_before)}: give distinct stage indices in "
                f"0..{len(self.stages) - 1}"
            )
        if not self.first_project and self.stem_channels[-1] != self.astp_channels:
            raise SpecError(
                f"first_project=false needs stem_channels[-1] ({self.stem_channels[-1]}) == astp_channels "
                f"({self.astp_channels}): every part must have the same width"
            )
        previous, previous_height = self.first_split, height
        for index, (stage, stage_height) in enumerate(zip(self.stages, self.stage_heights(height), strict=True)):
            where = f"stages[{index}]"
            if len(stage.channels) != 2 or min(stage.channels) < 1:
                raise SpecError(f"{where}.channels={list(stage.channels)}: give two positive channel counts, e.g. [32, 64]")
            if not stage.project and stage.channels[1] != self.astp_channels:
                raise SpecError(
                    f"{where}.project=false needs channels[1] ({stage.channels[1]}) == astp_channels "
                    f"({self.astp_channels}): every part must have the same width"
                )
            check_split(stage.split, stage_height, f"{where}.split")
            if not _refines(previous, previous_height, stage.split, stage_height):
                raise SpecError(
                    f"{where}.split {list(stage.split)} does not refine the previous split {list(previous)}: every "
                    "earlier region must be a union of consecutive regions of the next stage (cut the same tree "
                    "at growing k)"
                )
            previous, previous_height = stage.split, stage_height
        final = previous_height
        if self.hpp_rows is not None and (self.hpp_rows < 1 or final % self.hpp_rows):
            raise SpecError(f"hpp_rows={self.hpp_rows}: must divide the last stage's height {final}")
        return self

    # -- building from a partition tree -------------------------------------------------------

    @classmethod
    def from_splits(
        cls,
        splits: Sequence[Sequence[int]],
        *,
        channels: Sequence[int] = PAPER_CHANNELS,
        stage_channels: Sequence[Sequence[int]] | None = None,
        stem_convs: int = 1,
        input_height: int | None = None,
        downsample_before: Sequence[int] = (),
        fta_stages: Sequence[int] = (0,),
        project_last: bool = False,
        astp_channels: int | None = None,
        hpp_rows: int | None = None,
        num_classes: int = 74,
    ) -> HSTLSpec:
        """Build a spec from one split list per stage (each at that stage's height).

        ``channels`` is OpenGait-style ``[stem, stage1, stage2, ...]`` (both convs of a stage output
        its width); ``stage_channels`` gives explicit ``(conv1, conv2)`` pairs instead. FTA follows the
        stages in ``fta_stages``; the last stage's ASTP has no projection unless ``project_last``.

        Example: ``HSTLSpec.from_splits([[40, 24], [8, 32, 16, 8]], channels=(8, 16, 32))``.
        """
        n_stages = len(splits)
        if n_stages == 0:
            raise SpecError("splits is empty: give one split list per stage, e.g. [[40, 24], [8, 32, 16, 8]]")
        if stage_channels is None:
            if len(channels) != n_stages + 1:
                raise SpecError(
                    f"channels={list(channels)}: give {n_stages + 1} widths (stem, then one per stage) for "
                    f"{n_stages} stages, or explicit stage_channels pairs"
                )
            pairs = [(int(c), int(c)) for c in channels[1:]]
        else:
            if len(stage_channels) != n_stages:
                raise SpecError(f"stage_channels has {len(stage_channels)} pairs for {n_stages} stages; give one per stage")
            pairs = [(int(a), int(b)) for a, b in stage_channels]
        down = tuple(int(i) for i in downsample_before)
        height = int(input_height) if input_height is not None else sum(splits[0]) * 2 ** sum(1 for d in down if d <= 0)
        fta = {int(i) for i in fta_stages}
        stages = tuple(
            StageSpec(
                channels=pairs[i],
                split=tuple(int(s) for s in splits[i]),
                fta=i in fta,
                project=project_last or i < n_stages - 1,
            )
            for i in range(n_stages)
        )
        return cls(
            stages=stages,
            stem_channels=(int(channels[0]),) * int(stem_convs),
            first_split=(height,),
            downsample_before=down,
            astp_channels=int(astp_channels) if astp_channels is not None else pairs[-1][1],
            hpp_rows=hpp_rows,
            num_classes=num_classes,
        )

    @classmethod
    def from_tree(
        cls,
        tree: _CutTree | str,
        cuts: Sequence[int] = PAPER_CUTS,
        *,
        input_height: int | None = None,
        downsample_before: Sequence[int] = (),
        **options: Any,
    ) -> HSTLSpec:
        """Build a spec from a partition tree and one cut (region count) per stage.

        Each stage's split is ``tree.cut(k)`` rescaled to that stage's height, all cuts together so
        they stay nested; ``tree`` may be a ``PartitionTree`` or a name for ``load_tree``. The other
        options are those of :meth:`from_splits` (``channels``, ``fta_stages``, ``num_classes`` ...).

        Example: ``HSTLSpec.from_tree("casia-b-paper", cuts=(2, 4), channels=(8, 16, 32))``.
        """
        from workbench.hierarchy import load_tree, rescale_splits

        if isinstance(tree, str):
            tree = load_tree(tree)
        counts = [int(k) for k in cuts]
        if not counts or min(counts) < 1:
            raise SpecError(f"cuts={list(cuts)}: give one region count >= 1 per stage, e.g. (2, 4)")
        if any(b < a for a, b in itertools.pairwise(counts)):
            raise SpecError(f"cuts={counts}: region counts must not decrease from stage to stage")
        height = int(tree.n_rows if input_height is None else input_height)
        down = tuple(int(i) for i in downsample_before)
        heights = [height // 2 ** sum(1 for d in down if d <= i) for i in range(len(counts))]
        final = heights[-1]
        if any(h != final * 2 ** sum(1 for d in down if d > i) for i, h in enumerate(heights)):
            raise SpecError(
                f"input_height={height} cannot be halved exactly {len(down)} time(s); use a height divisible "
                f"by {2 ** len(down)} or fewer downsampling steps"
            )
        # All cuts are rescaled together to the smallest stage height and scaled up exactly for taller
        # stages, so every stage refines the one before even across a downsampling step.
        try:
            finest = rescale_splits([tree.cut(k) for k in counts], final)
        except ValueError as exc:
            raise SpecError(f"cuts={counts}: {exc}") from exc
        splits = [[size * (h // final) for size in split] for split, h in zip(finest, heights, strict=True)]
        return cls.from_splits(splits, input_height=height, downsample_before=down, **options)


def _refines(coarse: Sequence[int], coarse_height: int, fine: Sequence[int], fine_height: int) -> bool:
    """Whether every boundary of ``coarse`` (scaled to ``fine``'s height) is a boundary of ``fine``."""

    def boundaries(split: Sequence[int], total: int) -> set[Fraction]:
        edges, acc = set(), 0
        for size in split[:-1]:
            acc += size
            edges.add(Fraction(acc, total))
        return edges

    return boundaries(coarse, coarse_height) <= boundaries(fine, fine_height)
