"""tierstream: real-time customer tiering on Kafka (engine, Faust worker, CLI)."""

__version__ = "0.1.0"
