"""Steps of a run and their cache: a step whose inputs and configuration are unchanged is reused.

A :class:`Step` declares what it depends on: the steps whose results it reads (``after``), the
configuration keys it reads (``config``: ``"run.seed"``, or a whole table such as ``"bayes"`` or
``"did.att_gt"``) and whether it reads the registers. It is run with a view of the configuration
in which every key it does not declare raises :class:`UndeclaredConfigKey` when used, so a
declaration that misses a key fails loudly instead of reusing stale results.

Its key (:func:`step_key`) is the SHA-256 of the step's name, the values of its declared keys, the
keys of the steps it reads, the run's inputs (register file hashes, or the simulator's settings) and
the code (every ``.py`` file of the package, the data contract, the versions of the packages that
shape the results: :func:`code_key`). A change to any of them changes the key of the step and of
every step downstream of it, and only of those.

:class:`StepCache` keeps, per step, the key, the files the step wrote (hard links, or copies where
links are not possible) and what it handed to later steps (the run's state, pickled with
cloudpickle), in ``<run folder>/private/.steps/``. Reusing a step puts its files back where it
wrote them and its state back into the run, so a reused step and a re-run one leave identical
bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from impact.workflow.config import _TABLES, StudyConfig, to_dict

__all__ = [
    "CACHE_DIR",
    "Step",
    "StepCache",
    "UndeclaredConfigKey",
    "code_key",
    "config_values",
    "restricted",
    "step_key",
]

#: The cache folder, relative to the run folder (inside ``private/``: it holds microdata).
CACHE_DIR = Path("private") / ".steps"


@dataclass(frozen=True)
class Step:
    """One step of a run.

    Attributes
    ----------
    name
        Short name (``panel``, ``did``, ...): the ``--step`` of ``impact run`` and the cache entry.
    label
        Progress line.
    run
        ``run(registers, out, config, state)``: writes files under ``out`` and puts what later
        steps need into ``state`` (lists are appended to, other entries set).
    after
        Steps whose results (``state`` entries) it reads.
    config
        Configuration keys it reads (TOML names; a table name covers the whole table).
    registers
        Whether it reads the registers (they are read or simulated only when such a step runs).
    """

    name: str
    label: str
    run: Callable[..., None]
    after: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    registers: bool = False


class UndeclaredConfigKey(RuntimeError):
    """A step used a configuration key it does not declare (a bug in the step's declaration)."""


class _Undeclared:
    """Stands for a configuration value a step did not declare; every use raises."""

    __slots__ = ("_key", "_step")

    def __init__(self, key: str, step: str) -> None:
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_step", step)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise UndeclaredConfigKey(
            f"step {object.__getattribute__(self, '_step')!r} used the configuration key "
            f"{object.__getattribute__(self, '_key')!r}, which it does not declare (add it to "
            "the step's config)")

    def __getattr__(self, name: str) -> Any:
        return self._fail()

    def __repr__(self) -> str:
        return f"<undeclared config key {object.__getattribute__(self, '_key')}>"

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _fail
    __int__ = __float__ = __index__ = __str__ = __format__ = __fspath__ = _fail
    __iter__ = __len__ = __contains__ = __getitem__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _fail
    __rtruediv__ = __neg__ = __abs__ = _fail


def _declared(path: str, keys: Collection[str]) -> str:
    """``all`` (path is declared), ``part`` (a key below it is) or ``none``."""
    if any(path == k or path.startswith(k + ".") for k in keys):
        return "all"
    if any(k.startswith(path + ".") for k in keys):
        return "part"
    return "none"


def restricted(config: StudyConfig, keys: Collection[str], step: str) -> StudyConfig:
    """A copy of ``config`` whose undeclared keys raise :class:`UndeclaredConfigKey` when used.

    The ``StudyConfig`` shortcuts (``config.seed``, ``config.n_boot``, ...) read the keys they
    stand for, so they work exactly when those keys are declared.
    """
    def sub(obj: Any, prefix: str) -> Any:
        changes: dict[str, Any] = {}
        for f in fields(obj):
            path = f"{prefix}.{f.name}"
            state = _declared(path, keys)
            if state == "part" and is_dataclass(getattr(obj, f.name)):
                changes[f.name] = sub(getattr(obj, f.name), path)
            elif state == "none":
                changes[f.name] = _Undeclared(path, step)
        return dataclasses.replace(obj, **changes)

    changes: dict[str, Any] = {}
    for table, attr in _TABLES.items():
        state = _declared(table, keys)
        if state == "part":
            changes[attr] = sub(getattr(config, attr), table)
        elif state == "none":
            changes[attr] = _Undeclared(table, step)
    return dataclasses.replace(config, **changes)


def config_values(config: StudyConfig, keys: Iterable[str]) -> dict[str, Any]:
    """The values of ``keys`` (TOML names; a table gives its whole table), for a step's key.

    Raises
    ------
    KeyError
        A key that is not in the configuration (a bug in a step's declaration).
    """
    plain = to_dict(config)
    out: dict[str, Any] = {}
    for key in sorted(keys):
        value: Any = plain
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out


def _package_files() -> list[Path]:
    root = Path(__file__).resolve().parents[1]
    return sorted(root.rglob("*.py"))


def code_key() -> str:
    """SHA-256 of the code and environment behind a run's numbers.

    Every ``.py`` file of the installed ``impact`` package (paths and bytes), the data contract
    (:func:`impact.report.release.data_spec_sha256`) and the versions of Python and of the packages
    that shape the results (:func:`impact.workflow.provenance.package_versions`).
    """
    from impact.report.release import data_spec_sha256
    from impact.workflow.provenance import package_versions

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in _package_files():
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    h.update(data_spec_sha256().encode())
    h.update(json.dumps(package_versions(), sort_keys=True).encode())
    return h.hexdigest()


def step_key(step: Step, config: StudyConfig, *, upstream: Mapping[str, str], inputs: str,
             code: str) -> str:
    """The cache key of ``step``: see the module docstring."""
    payload = {"step": step.name, "config": config_values(config, step.config),
               "after": {name: upstream[name] for name in sorted(step.after)},
               "inputs": inputs, "code": code, "reads_registers": step.registers}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _files(out: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``out`` but the cache: relative path -> (size, mtime_ns)."""
    cache = (out / CACHE_DIR).resolve()
    found: dict[str, tuple[int, int]] = {}
    for root, dirs, names in os.walk(out):
        if Path(root).resolve() == cache.parent:
            dirs[:] = [d for d in dirs if d != cache.name]
        for name in names:
            path = Path(root) / name
            st = path.stat()
            found[path.relative_to(out).as_posix()] = (st.st_size, st.st_mtime_ns)
    return found


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class StepCache:
    """The cache of a run folder's steps (``<out>/private/.steps/<step>/``).

    Each entry holds ``entry.json`` (the step's key and the files it wrote), ``state.pkl`` (what it
    handed to later steps) and ``files/`` (its files). One entry per step: running a step replaces
    its entry.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.folder = self.out / CACHE_DIR

    def key(self, name: str) -> str | None:
        """The key of the step's entry, or None."""
        try:
            entry = json.loads((self.folder / name / "entry.json").read_text())
        except (OSError, ValueError):
            return None
        return entry.get("key")

    def has(self, name: str, key: str) -> bool:
        """Whether the step has a complete entry with this key."""
        return self.key(name) == key and (self.folder / name / "state.pkl").is_file()

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """The run folder's files now (before a step runs)."""
        return _files(self.out)

    def store(self, name: str, key: str, before: Mapping[str, tuple[int, int]],
              delta: Mapping[str, Any]) -> bool:
        """Keep what a step just wrote (the files new or changed since ``before``) and ``delta``.

        Returns False (and keeps nothing) when ``delta`` cannot be pickled: the step then runs
        again next time.
        """
        import cloudpickle

        try:
            blob = cloudpickle.dumps(dict(delta))
        except Exception:  # anything unpicklable: do not cache this step
            self.drop(name)
            return False
        after = _files(self.out)
        written = sorted(p for p, stat in after.items() if before.get(p) != stat)
        tmp = self.folder / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "files").mkdir(parents=True)
        for rel in written:
            _link(self.out / rel, tmp / "files" / rel)
        (tmp / "state.pkl").write_bytes(blob)
        (tmp / "entry.json").write_text(json.dumps({"key": key, "files": written}, indent=1))
        self.drop(name)
        tmp.rename(self.folder / name)
        return True

    def restore(self, name: str) -> dict[str, Any]:
        """Put the step's files back into the run folder; return its state delta."""
        import cloudpickle

        entry = json.loads((self.folder / name / "entry.json").read_text())
        for rel in entry["files"]:
            _link(self.folder / name / "files" / rel, self.out / rel)
        return cloudpickle.loads((self.folder / name / "state.pkl").read_bytes())

    def drop(self, name: str) -> None:
        """Remove the step's entry."""
        shutil.rmtree(self.folder / name, ignore_errors=True)

    def keep_only(self, names: Collection[str]) -> None:
        """Remove entries of steps not in ``names`` (and leftovers of interrupted runs)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name not in names:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


def state_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What a step added to the run's state: new list items, and entries set or replaced."""
    delta: dict[str, Any] = {}
    for k, v in after.items():
        old = before.get(k)
        if isinstance(v, list) and isinstance(old, tuple) and old[0] == "list":
            if len(v) > old[1]:
                delta[k] = ("extend", v[old[1]:])
        elif k not in before or old != ("obj", id(v)):
            delta[k] = ("set", v)
    return delta


def state_marks(state: Mapping[str, Any]) -> dict[str, Any]:
    """A mark of the state before a step (list lengths, object identities)."""
    return {k: ("list", len(v)) if isinstance(v, list) else ("obj", id(v)) for k, v in state.items()}


def apply_delta(state: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Merge a reused step's delta into the run's state."""
    for k, (how, value) in delta.items():
        if how == "extend":
            state.setdefault(k, []).extend(value)
        else:
            state[k] = value
