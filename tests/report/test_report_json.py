"""render's JSON writer gives exactly json.dumps(..., indent=2), built from faster parts."""

from __future__ import annotations

import json
import math
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.report.render import indented_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
# non-str keys are converted by json (1 -> "1", None -> "null"): they take json's own path
keys = st.text(max_size=8) | st.integers(-5, 5) | st.none() | st.booleans()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(keys, inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_same_text_as_json_indent_2(value: object) -> None:
    assert indented_json(value) == json.dumps(value, indent=2)


@given(values, st.integers(0, 3))
def test_nested_indentation_is_json_text_shifted(value: object, depth: int) -> None:
    nl = "\n" + "  " * depth
    assert indented_json(value, nl) == json.dumps(value, indent=2).replace("\n", nl)


def test_report_shapes_and_odd_values() -> None:
    cases: list[object] = [
        {},
        [],
        {"a": []},
        {"kinds": {"wrong_password": 3}, "lines": ["x:1: \x1b[2J \u00e9 \U0001f600", '\n\t"']},
        [1.5, -0.0, math.inf, -math.inf, math.nan, 10**30, True, None, "s"],
        {"n": {1: "int key", 2.5: "float key", None: "null key"}},
        OrderedDict([("b", 1), ("a", [OrderedDict()])]),
        ["a", "b", 3],  # a list of strings that is not all strings
    ]
    for value in cases:
        assert indented_json(value) == json.dumps(value, indent=2)


def test_not_serializable_raises_as_json_does() -> None:
    for value in ({"a": [object()]}, [{1, 2}], {("a",): 1}):
        try:
            json.dumps(value, indent=2)
        except TypeError as exc:
            expected = str(exc)
        try:
            indented_json(value)
        except TypeError as exc:
            assert str(exc) == expected
        else:
            raise AssertionError(f"{value!r} was rendered")
