"""Small City and ASN databases in MaxMind format, written by the tests (mmdb-writer)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# (network, country, subdivision, city, lat, lon, asn): Minneapolis, Duluth (MN, 230 km away),
# Salt Lake City (Utah, same country), Lagos (Nigeria)
PLACES: dict[str, tuple[str, str, str, str, float, float, int]] = {
    "msp": ("198.51.100.0/25", "US", "MN", "Minneapolis", 44.98, -93.26, 7922),
    "duluth": ("198.51.100.128/25", "US", "MN", "Duluth", 46.79, -92.10, 7922),
    "utah": ("203.0.113.0/25", "US", "UT", "Salt Lake City", 40.76, -111.89, 6315),
    "lagos": ("203.0.113.128/25", "NG", "LA", "Lagos", 6.45, 3.39, 29465),
}
ADDR = {
    "msp": "198.51.100.10",
    "duluth": "198.51.100.140",
    "utah": "203.0.113.10",
    "lagos": "203.0.113.140",
}


def write_dbs(directory: Path, places: Mapping[str, tuple[Any, ...]] = PLACES) -> tuple[Path, Path]:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    city = MMDBWriter(ip_version=6, database_type="GeoLite2-City", ipv4_compatible=True)
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    for net, cc, sub, name, lat, lon, number in places.values():
        city.insert_network(
            IPSet([net]),
            {
                "country": {"iso_code": cc},
                "subdivisions": [{"iso_code": sub}],
                "city": {"names": {"en": name}},
                "location": {"latitude": lat, "longitude": lon},
            },
        )
        asn.insert_network(
            IPSet([net]),
            {"autonomous_system_number": number, "autonomous_system_organization": f"AS {name}"},
        )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "GeoLite2-City.mmdb", directory / "GeoLite2-ASN.mmdb"
    # written beside and renamed in, as geoipupdate does (a new inode)
    for writer, path in zip((city, asn), paths, strict=True):
        writer.to_db_file(str(path) + ".tmp")
        Path(str(path) + ".tmp").replace(path)
    return paths
