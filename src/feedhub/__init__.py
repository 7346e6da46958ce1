"""feedhub: a self-hosted aggregator for regional news feeds."""

__version__ = "0.1.0.dev0"
