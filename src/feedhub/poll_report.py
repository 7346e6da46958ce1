"""What a poll reports: one result per source, and the totals of a run (the CLI prints them,
the worker logs them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PollResult:
    source_id: str
    status: str  # "ok", "not_modified", "error", "gone"
    http_status: int | None = None
    new: int = 0
    updated: int = 0
    error: str | None = None
    duration: float = 0.0
    bytes: int = 0
    warnings: tuple[str, ...] = ()
    redirected_to: str | None = None


@dataclass(frozen=True, slots=True)
class AfterPoll:
    clustered: int = 0
    filed: int = 0
    indexed: int = 0
    related: int = 0


@dataclass
class PollReport:
    results: list[PollResult] = field(default_factory=list)
    elapsed: float = 0.0
    busy: int = 0  # sources skipped because another poller holds them
    clustered: int = 0  # items placed into stories after the polls
    filed: int = 0  # items filed under sections
    indexed: int = 0  # items indexed for search after the polls (not by the parse workers)
    related: int = 0  # stories whose related reading was computed

    def add(self, after: AfterPoll) -> None:
        self.clustered += after.clustered
        self.filed += after.filed
        self.indexed += after.indexed
        self.related += after.related

    @property
    def derived(self) -> int:
        """Changes made after the polls (stories, sections, search, related reading)."""
        return self.clustered + self.filed + self.indexed + self.related

    @property
    def new_items(self) -> int:
        return sum(r.new for r in self.results)

    @property
    def updated_items(self) -> int:
        return sum(r.updated for r in self.results)

    @property
    def ok(self) -> int:
        return sum(r.status == "ok" for r in self.results)

    @property
    def not_modified(self) -> int:
        return sum(r.status == "not_modified" for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.status in ("error", "gone") for r in self.results)
