"""The HTTP side: published feeds, OPML, health and metrics."""

from feedhub.web.app import FeedhubApp, create_app

__all__ = ["FeedhubApp", "create_app"]
