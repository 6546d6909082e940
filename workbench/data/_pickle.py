"""Safe unpickling of OpenGait ``.pkl`` files: numpy arrays and plain containers, nothing else.

Unpickling is code execution: a pkl may name any importable callable and ask for it to be called.
Two independent guards stand between a file and that:

1. a static pass over the opcode stream (``pickletools.genops``) that simulates the unpickler's
   stack, resolves every global the file names and checks every REDUCE calls an allowed callable;
   the file is refused before a single object is built;
2. a ``pickle.Unpickler`` whose ``find_class`` only hands out the same allow-list, so even a stream
   that fooled the static pass could not reach anything else.
"""

from __future__ import annotations

import importlib
import io
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from workbench.data._errors import CorruptFileError, UnsafePickleError

# Module names differ between numpy 1.x (``numpy.core``) and 2.x (``numpy._core``); files written
# by either must load under either, so both spellings are accepted and mapped to what is installed.
_CORE_MODULES = ("numpy.core", "numpy._core")
_REDUCE_CALLABLES = frozenset(
    {f"{core}.multiarray._reconstruct" for core in _CORE_MODULES}
    | {f"{core}.multiarray.scalar" for core in _CORE_MODULES}
    | {f"{core}.numeric._frombuffer" for core in _CORE_MODULES}
    | {"numpy.dtype", "_codecs.encode"}
)
# ``numpy.ndarray`` is only ever an argument (the subtype passed to ``_reconstruct``), never called.
_ALLOWED_GLOBALS = _REDUCE_CALLABLES | {"numpy.ndarray"}

# Opcodes a pickled numpy array never contains; each can build or call objects outside REDUCE.
_FORBIDDEN_OPCODES = frozenset(
    {"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEXT_BUFFER"}
)
_GET_OPCODES = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_STRING_OPCODES = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)


class _Mark:
    """The stack sentinel pushed by MARK."""


class _Global:
    """A global the stream names, tracked so REDUCE can be checked against the allow-list."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname


_MARK = _Mark()
_OTHER = object()


def _resolve(qualname: str) -> Any:
    """Import an allow-listed global, mapping numpy's core module to the installed spelling."""
    module_name, _, attr = qualname.rpartition(".")
    for core in _CORE_MODULES:
        if module_name.startswith(core + "."):
            suffix = module_name[len(core) :]
            for candidate in ("numpy._core", "numpy.core"):
                try:
                    return getattr(importlib.import_module(candidate + suffix), attr)
                except (ImportError, AttributeError):
                    continue
    return getattr(importlib.import_module(module_name), attr)


def _check_global(path: Path, qualname: str) -> None:
    if qualname not in _ALLOWED_GLOBALS:
        raise UnsafePickleError(
            f"{path}: refused to unpickle: it references {qualname!r}, but only numpy arrays and plain "
            "lists/tuples/dicts of them are allowed; re-save the data with numpy arrays only"
        )


def _stack_effects() -> dict[str, tuple[bool, int, int]]:
    """Per opcode name: (pops to a mark, items popped besides the mark's slice, items pushed)."""
    effects = {}
    for opcode in pickletools.opcodes:
        before = opcode.stack_before
        uses_mark = pickletools.markobject in before
        extra = before.index(pickletools.markobject) if uses_mark else len(before)
        effects[opcode.name] = (uses_mark, extra, len(opcode.stack_after))
    return effects


_EFFECTS = _stack_effects()


def scan_pickle(data: bytes, path: Path) -> None:
    """Refuse a pickle stream that names a disallowed global or calls one, without building anything."""
    stack: list[Any] = []
    memo: dict[Any, Any] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            name = opcode.name
            if name in _FORBIDDEN_OPCODES:
                raise UnsafePickleError(
                    f"{path}: refused to unpickle: opcode {name} can build arbitrary objects and never "
                    "occurs in a pickled numpy array; re-save the data with numpy arrays only"
                )
            if name == "GLOBAL":
                qualname = str(arg).replace(" ", ".", 1)
                _check_global(path, qualname)
                stack.append(_Global(qualname))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise UnsafePickleError(
                        f"{path}: refused to unpickle: it looks up a global whose name is not a plain "
                        "string; re-save the data with numpy arrays only"
                    )
                _check_global(path, f"{module}.{attr}")
                stack.append(_Global(f"{module}.{attr}"))
            elif name == "REDUCE":
                _args, func = stack.pop(), stack.pop()
                if not (isinstance(func, _Global) and func.qualname in _REDUCE_CALLABLES):
                    called = func.qualname if isinstance(func, _Global) else "an object built in the file"
                    raise UnsafePickleError(
                        f"{path}: refused to unpickle: it calls {called}, which is not an allowed numpy "
                        "constructor; re-save the data with numpy arrays only"
                    )
                stack.append(_OTHER)
            elif name in _STRING_OPCODES:
                stack.append(arg.decode("latin1") if isinstance(arg, bytes) else arg)
            elif name in _GET_OPCODES:
                stack.append(memo[arg])
            elif name in _PUT_OPCODES:
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "POP":
                stack.pop()
            else:
                uses_mark, extra, pushes = _EFFECTS[name]
                if uses_mark:
                    while stack.pop() is not _MARK:
                        pass
                if extra:
                    if len(stack) < extra:
                        raise IndexError("stack underflow")
                    del stack[-extra:]
                stack.extend([_OTHER] * pushes)
    except UnsafePickleError:
        raise
    except (ValueError, IndexError, KeyError) as exc:
        raise CorruptFileError(
            f"{path}: not a readable pickle ({exc}); the file is truncated or corrupt, re-create it"
        ) from exc


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose only reachable globals are the numpy array constructors."""

    def __init__(self, file: io.BytesIO, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        _check_global(self._path, qualname)
        return _resolve(qualname)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._path}: refused to unpickle: persistent ids are not allowed")


def loads_pickle(data: bytes, path: str | Path = "<bytes>") -> Any:
    """Unpickle ``data`` allowing numpy arrays and plain containers only; ``path`` names it in errors."""
    path = Path(path)
    scan_pickle(data, path)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        # Anything the static pass let through but the unpickler rejects is a malformed stream.
        raise CorruptFileError(
            f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); re-create the file"
        ) from exc


def load_pickle(path: str | Path) -> Any:
    """Load a ``.pkl`` holding numpy arrays (or lists/tuples/dicts of them); refuse anything else.

    Raises ``UnsafePickleError`` naming the file, before building any object, if the pickle
    references anything but numpy's array constructors; ``CorruptFileError`` if it is truncated.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: pkl file not found; check the dataset root") from exc
    if not data:
        raise CorruptFileError(f"{path}: empty file; re-create it")
    return loads_pickle(data, path)


def save_pickle(array: np.ndarray, path: str | Path) -> None:
    """Write one array as a ``.pkl`` the way OpenGait's pretreatment does (pickle protocol 4)."""
    with Path(path).open("wb") as fh:
        pickle.dump(np.ascontiguousarray(array), fh, protocol=4)
