"""``row-identity``: between/within-subject row statistics on planted identity bands and rendered data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.hierarchy import (
    IDENTITY_BLOCKS,
    DescriptorStats,
    HierarchyDiscovery,
    IdentityStats,
    RowIdentity,
    bootstrap_refits,
    create_descriptor,
    discover_tree,
    list_descriptors,
    preset_tree,
    silhouette_and_evidence,
    subject_anova,
)

ROWS = 64
# Four bands of 16 rows: a trait told strongly, the same trait told weakly, another trait, no trait.
BANDS = [(0, 16, 0, 3.0), (16, 32, 0, 0.8), (32, 48, 1, 3.0), (48, 64, 0, 0.0)]
PLANTED_CUT = [16, 16, 16, 16]


def planted_sequences(subjects: int = 16, sequences: int = 6, seed: int = 0,
                      shuffle: bool = False) -> list[tuple[np.ndarray, str]]:
    """Per-sequence features ``[64, 3]`` with their subject: each band adds ``strength x`` its trait to unit noise.

    The noise is drawn afresh per sequence and row, so only the subject traits relate rows; with
    ``shuffle`` the sequences are dealt to subjects at random (same counts), which breaks that link.
    """
    rng = np.random.default_rng(seed)
    traits = rng.normal(size=(subjects, 2, 3))
    owners = np.repeat(np.arange(subjects), sequences)
    labels = rng.permutation(owners) if shuffle else owners
    out = []
    for owner, label in zip(owners, labels, strict=True):
        x = rng.normal(size=(ROWS, 3))
        for start, stop, trait, strength in BANDS:
            x[start:stop] += strength * traits[owner, trait]
        out.append((x, f"s{label:02d}"))
    return out


def identity_stats(items: list[tuple[np.ndarray, str]]) -> IdentityStats:
    stats = IdentityStats(ROWS, ["a", "b", "c"], "row-identity")
    for x, subject in items:
        stats.add(x, subject)
    return stats


def planted_identity(**kwargs: object) -> IdentityStats:
    return identity_stats(planted_sequences(**kwargs))  # type: ignore[arg-type]


def fit(stats: DescriptorStats, weights: np.ndarray | None = None) -> HierarchyDiscovery:
    return HierarchyDiscovery(standardize=RowIdentity.standardize, feature_groups=stats.feature_groups).fit(
        stats.matrix(weights))


def test_is_registered_and_documented() -> None:
    assert "row-identity" in list_descriptors(kind="silhouette")
    d = create_descriptor("row-identity", n_rows=32)
    assert isinstance(d, RowIdentity) and d.learns_from_subjects and d.base == "row-stats"
    assert d.feature_names() == create_descriptor("row-stats").feature_names()
    with pytest.raises(ValueError, match="not one"):
        RowIdentity(base="activation-stats")


def test_planted_identity_bands_are_the_cut() -> None:
    stats = planted_identity()
    assert fit(stats).tree_.cut(4) == PLANTED_CUT
    share = stats.anova().share
    # Strong bands tell subjects apart (population share 9 / 10), the weak band less so (0.39), the
    # last band not at all.
    assert share[:16].mean() > 0.8 and share[32:48].mean() > 0.8 and share[:48].min() > 0.1
    assert 0.15 < share[16:32].mean() < 0.6
    assert share[48:].mean() < 0.1


def test_rows_of_one_trait_share_identity_and_other_traits_do_not() -> None:
    stats = planted_identity()
    x, names = stats.matrix(), stats.feature_names
    shared = x[:, 3:].reshape(ROWS, 3, ROWS)  # [row, feature, other row]
    assert len(names) == 3 + 3 * ROWS and names[3] == "shared:a:row0"
    assert shared[0, :, 1:16].mean() > 0.8  # same trait, same strength
    assert abs(shared[0, :, 32:48].mean()) < 0.3  # an independent trait
    assert abs(shared[0, :, 48:].mean()) < 0.05  # no trait at all
    assert np.allclose(np.einsum("rfr->rf", shared), x[:, :3])  # a row's own entry is its separability


def test_shuffled_subject_labels_destroy_the_signal() -> None:
    true, shuffled = planted_identity(), planted_identity(shuffle=True)
    assert true.anova().share.mean() > 0.4
    assert shuffled.anova().share.max() < 0.25
    assert fit(shuffled).tree_.cut(4) != PLANTED_CUT


def test_share_is_the_f_ratio_of_a_one_way_anova() -> None:
    from scipy.stats import f_oneway

    rng = np.random.default_rng(3)
    groups = [rng.normal(loc=mu, size=(n, 2, 1)) for mu, n in [(0.0, 3), (1.0, 5), (2.5, 2), (0.5, 4)]]
    counts = np.array([len(g) for g in groups])
    sums = np.stack([g.sum(axis=0) for g in groups])
    squares = np.stack([(g**2).sum(axis=0) for g in groups])
    anova = subject_anova(counts, sums, squares)
    for row in range(2):
        expected = f_oneway(*(g[:, row, 0] for g in groups)).statistic
        assert anova.f_ratio[row, 0] == pytest.approx(expected, rel=1e-9)
    # The share is the intra-class correlation the F ratio implies: (F - 1) / (F - 1 + n0), at least 0.
    f, n0 = anova.f_ratio, anova.group_size
    assert n0 == pytest.approx((14 - (9 + 25 + 4 + 16) / 14) / 3)
    assert np.allclose(anova.share, np.clip((f - 1) / (f - 1 + n0), 0, None))


def test_subject_weights_equal_repeating_subjects() -> None:
    items = planted_sequences(subjects=5, sequences=3)
    stats = identity_stats(items)
    weights = np.array([2.0, 0.0, 1.0, 1.0, 1.0])
    repeated = identity_stats([(x, f"{subject}-copy{k}") for x, subject in items
                               for k in range(int(weights[stats.subjects.index(subject)]))])
    assert np.allclose(stats.matrix(weights), repeated.matrix())
    # Bootstrap refits run on the same statistics without re-reading anything.
    refits = bootstrap_refits(HierarchyDiscovery(feature_groups=stats.feature_groups), stats, 3, random_state=0)
    assert all(r.tree_.n_rows == ROWS for r in refits)


def test_merged_workers_equal_one_pass() -> None:
    items = planted_sequences(subjects=6, sequences=4)
    whole, first, second = identity_stats(items), identity_stats(items[::2]), identity_stats(items[1::2])
    assert np.allclose(first.merge(second).matrix(), whole.matrix())
    with pytest.raises(ValueError, match="cannot merge"):
        DescriptorStats(ROWS, whole.feature_names, "row-identity", whole.feature_groups).merge(whole)


def test_degenerate_designs_are_explained() -> None:
    one_subject = IdentityStats(4, ["a"], "row-identity")
    for _ in range(3):
        one_subject.add(np.ones((4, 1)), "s1")
    with pytest.raises(ValueError, match="at least 2 labelled training subjects; got 1 \\('s1'\\)"):
        one_subject.matrix()
    singletons = IdentityStats(4, ["a"], "row-identity")
    for s in range(5):
        singletons.add(np.full((4, 1), float(s)), f"s{s}")
    with pytest.raises(ValueError, match="each of the 5 subjects has one"):
        singletons.matrix()
    unlabelled = RowIdentity(n_rows=8).accumulate([walker(6, 0.0, 0.5), walker(6, 0.1, 0.5)])
    with pytest.raises(ValueError, match="got 1 \\('all'\\)"):
        unlabelled.matrix()


def test_constant_rows_carry_no_identity() -> None:
    rng = np.random.default_rng(1)
    stats = IdentityStats(6, ["a", "b"], "row-identity")
    for s in range(4):
        trait = rng.normal()
        for _ in range(3):
            x = np.full((6, 2), 0.5 / 44)  # a constant that squares inexactly
            x[3:, 0] = 2 * trait + rng.normal(size=3)
            stats.add(x, f"s{s}")
    anova, x = stats.anova(), stats.matrix()
    assert np.all(np.isfinite(x))
    assert np.all(anova.share[:3] == 0) and np.all(anova.share[:, 1] == 0) and np.all(anova.f_ratio[:3] == 0)
    assert np.all(x[:3] == 0) and anova.share[3:, 0].min() > 0


def walker(frames: int, phase: float, torso: float, swing: float = 0.4, h: int = 32, w: int = 32) -> np.ndarray:
    """A torso ``torso`` of the width wide over legs that swing by ``swing`` (float silhouette)."""
    seq = np.zeros((frames, h, w), dtype=np.float32)
    half = torso * w / 2
    seq[:, 2 : h // 2, int(w / 2 - half) : int(np.ceil(w / 2 + half))] = 1.0
    reach = swing * np.sin(2 * np.pi * (np.arange(frames) / 16 + phase))
    for t in range(frames):
        for r in range(h // 2, h):
            step = round((r - h // 2) * reach[t])
            seq[t, r, 14 - abs(step) - 1 : 18 + abs(step) + 1] = 1.0
    return seq


def test_silhouettes_whose_torsos_identify_split_torso_from_legs() -> None:
    rng = np.random.default_rng(0)
    sequences, subjects = [], []
    for s in range(8):
        torso = 0.2 + 0.04 * s
        for _ in range(4):
            # The legs' swing changes from walk to walk and says nothing about the subject.
            sequences.append(walker(24, rng.uniform(), torso, swing=rng.uniform(0.2, 0.6)))
            subjects.append(f"s{s}")
    stats = RowIdentity(n_rows=32).accumulate(sequences, subjects)
    assert isinstance(stats, IdentityStats) and stats.n_subjects == 8
    share = stats.anova().share
    occupancy_mean = stats.signal_names.index("occupancy:mean")
    assert share[4:14, occupancy_mean].min() > 0.9 and share[20:, occupancy_mean].max() < 0.5
    assert fit(stats).tree_.cut(2)[0] in (15, 16, 17)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny render whose test subjects' files are unreadable: any read of them fails."""
    from workbench.data.synth import SynthConfig
    from workbench.data.synth._dataset import render_dataset

    out = tmp_path_factory.mktemp("identity") / "data"
    render_dataset(out, SynthConfig.tiny(subjects=6, frames=(16, 20), seed=0))
    test_ids = json.loads((out / "partition.json").read_text())["TEST_SET"]
    assert test_ids
    for sid in test_ids:
        for pkl in (out / sid).rglob("*.pkl"):
            pkl.write_bytes(b"not a pickle")
    return out


def test_discovery_reads_training_subjects_only(rendered: Path, tmp_path: Path) -> None:
    partition = json.loads((rendered / "partition.json").read_text())
    result = discover_tree(rendered, descriptor="row-identity", progress=False)
    assert sorted(result.stats.subjects) == sorted(partition["TRAIN_SET"])
    assert result.tree.provenance["subset"] == "train"
    # A study's split narrows it further: validation subjects stay unseen too.
    split = tmp_path / "split.json"
    train = partition["TRAIN_SET"]
    split.write_text(json.dumps({"TRAIN_SET": train[:2], "TEST_SET": train[2:]}))
    narrowed = discover_tree(rendered, descriptor="row-identity", subset="train", partition=split, progress=False)
    assert sorted(narrowed.stats.subjects) == sorted(train[:2])


def test_discovery_is_deterministic_with_bootstrap(rendered: Path) -> None:
    runs = [discover_tree(rendered, descriptor="row-identity", bootstrap=5, ks=(2, 4), progress=False)
            for _ in range(2)]
    assert runs[0].tree.tree_id == runs[1].tree.tree_id
    assert runs[0].tree.provenance["stability"] == runs[1].tree.provenance["stability"]
    assert runs[0].stats.feature_groups is not None
    assert list(dict.fromkeys(runs[0].stats.feature_groups)) == list(IDENTITY_BLOCKS)


def test_evidence_panels_read_training_subjects_only(rendered: Path) -> None:
    tree = discover_tree(rendered, descriptor="row-identity", progress=False).tree
    image, evidence = silhouette_and_evidence(rendered, tree, progress=False)
    assert evidence is not None and evidence.blocks == list(IDENTITY_BLOCKS) and image.shape == (64, 64)
    # A preset drawn with this descriptor's evidence keeps to the training subjects too.
    _, evidence = silhouette_and_evidence(rendered, preset_tree("casia-b-paper"), descriptor="row-identity",
                                          progress=False)
    assert evidence is not None and evidence.n_rows == 64


def test_discover_command_takes_the_descriptor(rendered: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    out = tmp_path / "identity.json"
    assert main(["discover", "--data", str(rendered), "--descriptor", "row-identity", "--bootstrap", "3",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    n_train = len(json.loads((rendered / "partition.json").read_text())["TRAIN_SET"])
    assert f"{n_train} subjects" in text and "descriptor: row-identity" in text
    provenance = json.loads(out.read_text())["provenance"]
    assert provenance["subset"] == "train"
    assert provenance["standardize"] is False, "the command clusters as the descriptor asks (unstandardised)"


@pytest.fixture
def unlabelled_gifs(tmp_path: Path) -> Path:
    """A folder of three walking GIFs: one subject per file, one sequence each."""
    from PIL import Image

    for name in ("a", "b", "c"):
        frames = [Image.fromarray(np.pad(np.full((20, 8), 255, np.uint8), ((4, 8), (10 + i, 14 - i)))) for i in range(4)]
        frames[0].save(tmp_path / f"{name}.gif", save_all=True, append_images=frames[1:])
    return tmp_path


def test_discovery_refuses_unlabelled_sequences_before_reading_any(unlabelled_gifs: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """row-identity cannot compare subjects in a folder of GIFs, and says so before a single sequence is
    described, naming the descriptor that can read it; so do the dendrogram's evidence panels."""
    import workbench.hierarchy._pipeline as pipeline

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a sequence was read before the labels were checked")

    monkeypatch.setattr(pipeline, "accumulate", unread)
    with pytest.raises(ValueError, match=r"each of the 3 subjects has one .*row-articulation"):
        discover_tree(unlabelled_gifs, descriptor="row-identity", progress=False)
    tree = preset_tree("uniform-32").with_metadata(name="identity", provenance={"descriptor": "row-identity"})
    monkeypatch.setattr(pipeline, "open_sequences", lambda *a, **k: pipeline.SequenceTable(
        "gifs", "gifs", ["a", "b", "c"], lambda i: unread()))
    with pytest.raises(ValueError, match=r"each of the 3 subjects has one .*--no-evidence"):
        silhouette_and_evidence(unlabelled_gifs, tree, progress=False)
