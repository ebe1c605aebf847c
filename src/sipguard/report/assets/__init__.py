"""Assets shipped in the package: the vendored chart library (Chart.js, see the .VENDORED note
beside it for version, licence and checksum; `scripts/vendor-web` updates it). The dashboard
serves it and `scan --format html` inlines it: neither loads anything from a CDN."""

from __future__ import annotations

from functools import cache
from importlib import resources

CHART_FILE = "chart.umd.min.js"


@cache
def asset(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def chart_library() -> str:
    return asset(CHART_FILE)
