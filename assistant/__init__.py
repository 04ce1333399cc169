"""backstretch: an offline, hands-free voice coach for the knee-to-chest stretch."""

__version__ = "0.1.0"
