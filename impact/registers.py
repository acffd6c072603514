"""The `Registers` container: the five input tables (and, from the simulator, the truth)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

TABLES: tuple[str, ...] = ("persons", "households", "departments", "lettings", "tool_adoption")


@dataclass(frozen=True)
class Registers:
    """The register inputs of a study, one DataFrame per table of ``data_spec/``.

    Attributes
    ----------
    persons, households, departments, lettings, tool_adoption
        The five input tables (see ``data_spec/README.md``).
    truth
        Only from :func:`impact.simulate.registers`: the true effects (``None`` for real data).
    counterfactual
        Only from the simulator: the same world without any letting tool (``None`` otherwise).
    """

    persons: pd.DataFrame
    households: pd.DataFrame
    departments: pd.DataFrame
    lettings: pd.DataFrame
    tool_adoption: pd.DataFrame
    truth: pd.DataFrame | None = None
    counterfactual: Registers | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five input tables by name (truth and counterfactual left out)."""
        return {name: getattr(self, name) for name in TABLES}

    def replace(self, **changes: object) -> Registers:
        """A copy with some tables replaced."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Registers(**current)  # type: ignore[arg-type]


def factorize_ids(parts: Sequence[pd.Series | np.ndarray], *, sort: bool = True
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Number the values of several id columns jointly: equal values get equal codes ``0..k-1``.

    Text ids are hashed once by Arrow (dictionary encoding, several times faster than hashing
    Python strings); anything else (integers, a column mixing integers and text) by
    :func:`pandas.factorize`.

    Parameters
    ----------
    parts
        The columns.
    sort
        Codes in the sorted order of the values (so that ordering by code is ordering by value).

    Returns
    -------
    codes, values
        Per column the int64 codes (-1 = null), and the value of each code.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = np.cumsum([len(p) for p in parts])[:-1]

    def text_chunks(part: pd.Series | np.ndarray) -> list[pa.Array]:
        if isinstance(part, pd.Series) and hasattr(part.array, "__arrow_array__"):
            arrow = part.array.__arrow_array__()  # Arrow-backed strings: no copy
        else:
            arrow = pa.array(np.asarray(part, dtype=object), from_pandas=True)
        chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
        if not all(pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
                   or pa.types.is_null(c.type) for c in chunks):
            raise TypeError("not text")
        return [c.cast(pa.large_string()) for c in chunks]

    try:
        joint = pa.concat_arrays([c for part in parts for c in text_chunks(part)])
    except (TypeError, pa.ArrowInvalid, pa.ArrowTypeError):
        joint = None
    if joint is None or len(joint) == 0:
        objects = [np.asarray(p, dtype=object) for p in parts]
        values = np.concatenate(objects) if objects else np.array([], dtype=object)
        try:
            codes, uniques = pd.factorize(values, sort=sort)
        except TypeError:  # integers mixed with text (not valid data): any order
            codes, uniques = pd.factorize(values)
        return (np.split(codes.astype(np.int64, copy=False), lengths),
                np.asarray(uniques, dtype=object))
    encoded = joint.dictionary_encode()
    index = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    if sort and len(uniques):
        order = pc.sort_indices(encoded.dictionary).to_numpy()
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        index = np.where(index >= 0, rank[np.maximum(index, 0)], -1)
        uniques = uniques[order]
    return np.split(index, lengths), uniques
