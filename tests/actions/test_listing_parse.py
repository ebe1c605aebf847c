"""Kernel listings are parsed defensively: odd or hostile JSON never crashes `list()`."""

from __future__ import annotations

from ipaddress import ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.actions.nftables import _elements

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
elem_like = st.fixed_dictionaries(
    {
        "elem": st.dictionaries(
            st.sampled_from(["val", "timeout", "expires", "x"]), json_values, max_size=4
        )
    }
)


@settings(max_examples=100, deadline=None)  # shared CI cores: no flaky deadlines
@given(st.lists(json_values | elem_like, max_size=8))
def test_garbage_elements_never_crash(elems):
    out = _elements({"nftables": [{"set": {"name": "ban4", "elem": elems}}, 5, "x", None]})
    assert all(isinstance(v, float | type(None)) for v in out.values())


def test_known_shapes():
    data = {
        "nftables": [
            {
                "set": {
                    "name": "ban4",
                    "elem": [
                        "192.0.2.1",
                        {"elem": {"val": "192.0.2.2", "timeout": 60, "expires": 42}},
                        {"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 8}}, "timeout": 5}},
                        {"elem": {"val": {"range": ["10.9.9.9", "10.9.9.9"]}}},
                        {"elem": {"val": {"range": ["10.0.0.1", "10.0.0.9"]}}},  # not ours: ignored
                        {"elem": {"val": "not an address"}},
                    ],
                }
            }
        ]
    }
    assert _elements(data) == {
        ip_network("192.0.2.1/32"): None,
        ip_network("192.0.2.2/32"): 42.0,
        ip_network("10.0.0.0/8"): 5.0,
        ip_network("10.9.9.9/32"): None,
    }
