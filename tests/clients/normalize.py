"""Compare result tables from different engines: numbers within a relative tolerance,
rows in a canonical order."""

import datetime
import decimal
import math


def norm_value(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, datetime.datetime):
        return v.replace(tzinfo=None)
    return v


def rows(table):
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    out = [tuple(norm_value(c[r]) for c in cols) for r in range(table.num_rows)]
    return sorted(out, key=lambda row: tuple((x is None, str(round(x, 2)) if isinstance(x, float) else str(x)) for x in row))


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def assert_same_rows(got, want, label=""):
    g, w = rows(got), rows(want)
    assert len(g) == len(w), f"{label}: {len(g)} rows, expected {len(w)}"
    for i, (x, y) in enumerate(zip(g, w)):
        assert len(x) == len(y) and all(same(p, q) for p, q in zip(x, y)), f"{label}: row {i}: {x} != {y}"
