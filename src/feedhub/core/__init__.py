"""The pure core of feedhub: no network, no database, and the clock only as an argument."""
