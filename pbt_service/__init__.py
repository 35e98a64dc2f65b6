"""PBT service: a stateless gRPC controller for population based training."""

__version__ = "0.1.0"
