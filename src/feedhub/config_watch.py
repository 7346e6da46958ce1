"""Live config: re-read the YAML when it changes or on SIGHUP, validate, then tell listeners.

An invalid edit is logged with every ``file:line`` problem and the running settings stay; the
bad version is remembered so it is reported once, not on every check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from feedhub.config import LoadedConfig, load_settings
from feedhub.errors import ConfigError
from feedhub.settings import Settings

log = logging.getLogger("feedhub.config")

Listener = Callable[[Settings, Settings], None]


class ConfigWatcher:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.config = loaded
        self._listeners: list[Listener] = []

    @property
    def settings(self) -> Settings:
        return self.config.settings

    def subscribe(self, listener: Listener) -> None:
        """``listener(old, new)`` runs after every accepted reload."""
        self._listeners.append(listener)

    def _mtime(self) -> int | None:
        try:
            return Path(self.config.path).stat().st_mtime_ns
        except OSError:
            return None

    def check_file(self) -> bool:
        mtime = self._mtime()
        if mtime is not None and mtime != self.config.mtime_ns:
            return self.reload()
        return False

    def reload(self) -> bool:
        """Re-read the file; return whether new settings were taken."""
        try:
            loaded = load_settings(self.config.path)
        except ConfigError as exc:
            mtime = self._mtime() or self.config.mtime_ns
            self.config = LoadedConfig(self.config.path, self.config.settings, mtime)
            log.error(
                "config reload rejected; keeping the running config",
                extra={"config": str(self.config.path), "problems": exc.problems},
            )
            return False
        old, self.config = self.config.settings, loaded
        for listener in self._listeners:
            try:
                listener(old, loaded.settings)
            except Exception:
                log.exception("applying the new config failed")
        log.info("config reloaded", extra={"sources": len(loaded.settings.sources)})
        return True

    async def watch(self, every: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                self.check_file()
