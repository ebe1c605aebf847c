"""The SIP sensor: judges SIP packets (NFQUEUE) before Asterisk sees them.

Pure parts (no I/O): `parse_sensor_config`, `SensorPolicy`, `PacketSensor`. The adapter
`sipguard.sensor.nfq.NfqSensor` binds the queue; `sipguard.sensor.render` writes kernel-only rules.
"""

from sipguard.sensor.config import SensorConfig, parse_sensor_config
from sipguard.sensor.policy import SensorPolicy, Verdict
from sipguard.sensor.sensor import PacketSensor

__all__ = ["PacketSensor", "SensorConfig", "SensorPolicy", "Verdict", "parse_sensor_config"]
