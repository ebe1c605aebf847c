"""The daemon (`sipguard run`): the composition root that builds the pipeline from the config,
supervises the sources, enforces decisions and answers the control socket."""

from sipguard.daemon.app import Daemon
from sipguard.daemon.control import ControlError, ControlServer, RequestError, request
from sipguard.daemon.enforcer import Enforcer

__all__ = [
    "ControlError",
    "ControlServer",
    "Daemon",
    "Enforcer",
    "RequestError",
    "request",
]
