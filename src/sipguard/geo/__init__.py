"""Geography at the edge: the admin's City/ASN databases (or bundled country data) -> Location.

detect/geofence.py decides on the Location; the daemon looks sources up here and feeds both.
"""

from sipguard.geo.config import GeoConfig, GeoConfigError, parse_geo
from sipguard.geo.reader import GeoError, GeoLookup

__all__ = ["GeoConfig", "GeoConfigError", "GeoError", "GeoLookup", "parse_geo"]
