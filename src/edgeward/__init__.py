"""edgeward: an edge API gateway with microservice governance built in."""

__version__ = "0.1.0"
