"""edgeward: an edge API gateway with microservice governance built in."""

from edgeward import _native

__version__ = "0.1.0"

# A native build older than its sources must never run: fall back to the sources instead.
_native.guard()
