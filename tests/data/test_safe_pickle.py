"""load_pickle: numpy arrays load; anything that could run code is refused before it runs."""

from __future__ import annotations

import copyreg
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import workbench.data._pickle as _pickle_module
from workbench.data import CorruptFileError, UnsafePickleError, load_pickle, loads_pickle, save_pickle


class _TouchFile:
    """Unpickling this would create a file through os.system."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.target}",))


class _OpenFile:
    """Unpickling this would create a file through the builtin open."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_arrays_round_trip_at_every_protocol(tmp_path: Path, protocol: int) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "seq.pkl"
    path.write_bytes(pickle.dumps(array, protocol=protocol))
    loaded = load_pickle(path)
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, array)


def test_plain_containers_of_arrays_load(tmp_path: Path) -> None:
    data = {"sils": np.ones((2, 4, 4), np.uint8), "pose": [np.zeros(3, np.float32), (np.int64(7),)]}
    path = tmp_path / "multi.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    loaded = load_pickle(path)
    assert np.array_equal(loaded["sils"], data["sils"])
    assert loaded["pose"][1][0] == 7


def test_save_pickle_writes_a_loadable_file(tmp_path: Path) -> None:
    array = np.full((3, 8, 8), 200, np.uint8)
    save_pickle(array, tmp_path / "a.pkl")
    assert np.array_equal(load_pickle(tmp_path / "a.pkl"), array)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("payload", [_TouchFile, _OpenFile])
def test_code_execution_is_refused_and_nothing_runs(tmp_path: Path, protocol: int, payload: type) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    # The array first makes the stream look legitimate; the payload follows inside a container.
    path.write_bytes(pickle.dumps([np.zeros((1, 2, 2), np.uint8), payload(target)], protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl"):
        load_pickle(path)
    assert not target.exists()


def test_refused_before_any_object_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bad reference at the very end must stop the load before even the leading array is built.
    built: list[object] = []
    monkeypatch.setattr(_pickle_module, "_RestrictedUnpickler", lambda *args: built.append(args))
    path = tmp_path / "late.pkl"
    path.write_bytes(pickle.dumps((np.zeros(3), _OpenFile(tmp_path / "x")), protocol=4))
    with pytest.raises(UnsafePickleError, match=r"late\.pkl.*'io\.open'"):
        load_pickle(path)
    assert built == []


def test_reduce_of_a_disallowed_callable_names_it(tmp_path: Path) -> None:
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        load_pickle(path)


def test_reduce_calling_a_non_global_is_refused() -> None:
    # REDUCE whose callable is a built object (here a tuple) is not one of numpy's constructors.
    data = b"\x80\x04))R."
    with pytest.raises(UnsafePickleError, match="not an allowed numpy constructor"):
        loads_pickle(data, "crafted.pkl")


def test_allowed_names_hidden_behind_memo_still_resolve() -> None:
    # STACK_GLOBAL whose strings come from the memo: module "os", name "system" via BINGET.
    data = (
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x04true\x85R."
    )
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        loads_pickle(data, "memo.pkl")


def test_extension_registry_opcodes_are_refused() -> None:
    # EXT opcodes look globals up in copyreg's registry, bypassing the names in the stream.
    copyreg.add_extension("posix", "system", 0x31)
    try:
        data = pickle.dumps(os.system, protocol=2)
    finally:
        copyreg.remove_extension("posix", "system", 0x31)
    assert b"\x82\x31" in data
    with pytest.raises(UnsafePickleError, match="EXT1"):
        loads_pickle(data, "ext.pkl")


def test_custom_classes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(Path("/tmp"), protocol=4))
    with pytest.raises(UnsafePickleError, match=r"obj\.pkl.*pathlib"):
        load_pickle(path)


def test_truncated_pickle_is_a_clear_corrupt_file_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(np.zeros((4, 16, 16), np.uint8), protocol=4)[:-40])
    with pytest.raises(CorruptFileError, match=r"cut\.pkl.*truncated or corrupt"):
        load_pickle(path)


def test_garbage_and_empty_files_are_corrupt(tmp_path: Path) -> None:
    (tmp_path / "junk.pkl").write_bytes(b"this is not a pickle at all")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CorruptFileError, match=r"junk\.pkl"):
        load_pickle(tmp_path / "junk.pkl")
    with pytest.raises(CorruptFileError, match=r"empty\.pkl: empty file"):
        load_pickle(tmp_path / "empty.pkl")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pkl"):
        load_pickle(tmp_path / "nope.pkl")
