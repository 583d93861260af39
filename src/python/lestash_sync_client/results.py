"""Typed results of the control methods: frozen dataclasses, one per answer.

Each is built by `from_json` from the daemon's JSON, every field checked: an
answer that does not have the documented shape raises MalformedAnswerError
naming the field. `raw` keeps the JSON as received, fields this version does
not know included (the protocol adds fields without a version change), and
is what `--json` prints.

Values read from the Le Stash database (item columns, history rows, search
hits) are SqliteValue: None, int, float, str, or Blob for a BLOB, exactly as
SQLite stores them. Times the daemon sets are timezone-aware datetimes (UTC);
timestamps the app wrote stay as it wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Union

from .errors import MalformedAnswerError


@dataclass(frozen=True)
class Blob:
    """A BLOB where the app keeps text (sent as {"blob_hex": "…"})."""

    data: bytes


SqliteValue = Union[None, int, float, str, Blob]

# Daemon states (status.state, events of type "state"); a newer daemon may add more.
STATES = ("starting", "syncing", "idle", "offline", "paused", "error")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class _Object:
    """One JSON object of an answer, read field by field with its path for errors."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise MalformedAnswerError(f"{where}: expected an object, got {_describe(value)}")
        self.value: dict[str, Any] = value
        self.where = where

    def _field(self, key: str, ok: Any, expected: str, nullable: bool = False) -> Any:
        if key not in self.value:
            raise MalformedAnswerError(f'{self.where}: "{key}" is missing')
        v = self.value[key]
        if (v is None and nullable) or (v is not None and ok(v)):
            return v
        raise MalformedAnswerError(f"{self.where}.{key}: expected {expected}, got {_describe(v)}")

    def integer(self, key: str) -> int:
        return self._field(
            key, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"
        )

    def optional_integer(self, key: str) -> int | None:
        ok = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        return self._field(key, ok, "an integer or null", nullable=True)

    def number(self, key: str) -> float:
        ok = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        return float(self._field(key, ok, "a number"))

    def text(self, key: str) -> str:
        return self._field(key, lambda v: isinstance(v, str), "a string")

    def optional_text(self, key: str) -> str | None:
        return self._field(key, lambda v: isinstance(v, str), "a string or null", nullable=True)

    def boolean(self, key: str) -> bool:
        return self._field(key, lambda v: isinstance(v, bool), "true or false")

    def time(self, key: str) -> datetime | None:
        v = self.optional_text(key)
        if v is None:
            return None
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            raise MalformedAnswerError(
                f'{self.where}.{key}: expected an ISO-8601 time, got "{v}"'
            ) from None

    def obj(self, key: str) -> _Object:
        self._field(key, lambda v: isinstance(v, dict), "an object")
        return _Object(self.value[key], f"{self.where}.{key}")

    def array(self, key: str) -> list[Any]:
        return self._field(key, lambda v: isinstance(v, list), "an array")

    def objects(self, key: str) -> list[_Object]:
        return [_Object(v, f"{self.where}.{key}[{i}]") for i, v in enumerate(self.array(key))]

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.array(key)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise MalformedAnswerError(
                    f"{self.where}.{key}[{i}]: expected a string, got {_describe(v)}"
                )
        return tuple(values)

    def sqlite(self, key: str) -> SqliteValue:
        """A column as stored; a column the schema lacks (v1 has no parent_id) is None."""
        return sqlite_value(self.value.get(key), f"{self.where}.{key}")

    def columns(self) -> dict[str, SqliteValue]:
        return {k: sqlite_value(v, f"{self.where}.{k}") for k, v in self.value.items()}


def sqlite_value(value: Any, where: str = "value") -> SqliteValue:
    """A database value from its JSON form ({"blob_hex": …} becomes a Blob)."""
    if value is None or (isinstance(value, (int, float, str)) and not isinstance(value, bool)):
        return value
    if (
        isinstance(value, dict)
        and list(value) == ["blob_hex"]
        and isinstance(value["blob_hex"], str)
    ):
        try:
            return Blob(bytes.fromhex(value["blob_hex"]))
        except ValueError:
            pass
    raise MalformedAnswerError(f"{where}: expected a database value, got {_describe(value)}")


# --- hello / version


@dataclass(frozen=True)
class Hello:
    daemon: str
    version: str
    protocol: int
    methods: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> Hello:
        o = _Object(value, "hello")
        return Hello(
            o.text("daemon"),
            o.text("version"),
            o.integer("protocol"),
            o.strings("methods"),
            o.value,
        )


# --- status


@dataclass(frozen=True)
class PushCounts:
    changes: int
    rows: int
    deleted: int
    refused: int

    @staticmethod
    def from_object(o: _Object) -> PushCounts:
        return PushCounts(
            o.integer("changes"), o.integer("rows"), o.integer("deleted"), o.integer("refused")
        )


@dataclass(frozen=True)
class PullCounts:
    changes: int
    applied: int
    deleted: int
    held: int  # remote updates waiting for this replica's own edit of the row to be pushed

    @staticmethod
    def from_object(o: _Object) -> PullCounts:
        return PullCounts(
            o.integer("changes"), o.integer("applied"), o.integer("deleted"), o.integer("held")
        )


@dataclass(frozen=True)
class LastPush:
    at: datetime | None
    counts: PushCounts


@dataclass(frozen=True)
class LastPull:
    at: datetime | None
    counts: PullCounts


@dataclass(frozen=True)
class Replica:
    id: str
    name: str


@dataclass(frozen=True)
class PostgresStatus:
    target: str | None  # user@host:port/db, never the password; None when not configured
    connected: bool
    schema_version: int


@dataclass(frozen=True)
class SchemaVersions:
    daemon_objects: int
    upstream: int


@dataclass(frozen=True)
class Status:
    state: str  # one of STATES
    summary: str
    detail: str  # the last error, or why it is offline
    replica: Replica
    database: str
    postgres: PostgresStatus
    schema: SchemaVersions
    started_at: datetime | None
    last_cycle_at: datetime | None
    last_cycle_ms: float
    last_push: LastPush
    last_pull: LastPull
    pushed_total: PushCounts
    pulled_total: PullCounts
    outbox_depth: int  # local changes not pushed yet
    lag_seconds: float  # age of the oldest of them
    dead_letters: int  # changes Postgres refused for good
    waiting_tables: tuple[str, ...]  # synced tables the database does not have yet
    unsynced_tables: tuple[str, ...]  # tables lestash-sync does not know: not synced
    errors_since_start: int
    cycles: int
    clients: int
    protocol: int
    version: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any, where: str = "status") -> Status:
        o = _Object(value, where)
        r, pg, schema = o.obj("replica"), o.obj("postgres"), o.obj("schema")
        push, pull = o.obj("last_push"), o.obj("last_pull")
        return Status(
            state=o.text("state"),
            summary=o.text("summary"),
            detail=o.text("detail"),
            replica=Replica(r.text("id"), r.text("name")),
            database=o.text("database"),
            postgres=PostgresStatus(
                pg.optional_text("target"), pg.boolean("connected"), pg.integer("schema_version")
            ),
            schema=SchemaVersions(schema.integer("daemon_objects"), schema.integer("upstream")),
            started_at=o.time("started_at"),
            last_cycle_at=o.time("last_cycle_at"),
            last_cycle_ms=o.number("last_cycle_ms"),
            last_push=LastPush(push.time("at"), PushCounts.from_object(push.obj("counts"))),
            last_pull=LastPull(pull.time("at"), PullCounts.from_object(pull.obj("counts"))),
            pushed_total=PushCounts.from_object(o.obj("pushed_total")),
            pulled_total=PullCounts.from_object(o.obj("pulled_total")),
            outbox_depth=o.integer("outbox_depth"),
            lag_seconds=o.number("lag_seconds"),
            dead_letters=o.integer("dead_letters"),
            waiting_tables=o.strings("waiting_tables"),
            unsynced_tables=o.strings("unsynced_tables"),
            errors_since_start=o.integer("errors_since_start"),
            cycles=o.integer("cycles"),
            clients=o.integer("clients"),
            protocol=o.integer("protocol"),
            version=o.text("version"),
            raw=o.value,
        )


# --- metrics


@dataclass(frozen=True)
class Metrics:
    content_type: str
    text: str  # Prometheus text format
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> Metrics:
        o = _Object(value, "metrics")
        return Metrics(o.text("content_type"), o.text("text"), o.value)


# --- sync.now


@dataclass(frozen=True)
class SyncNowResult:
    """Without wait: requested, nothing else. With wait: caught_up and the status then."""

    requested: bool
    caught_up: bool
    status: Status | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> SyncNowResult:
        o = _Object(value, "sync.now")
        if "caught_up" in o.value:
            return SyncNowResult(
                True,
                o.boolean("caught_up"),
                Status.from_json(o.value.get("status"), "sync.now.status"),
                o.value,
            )
        return SyncNowResult(o.boolean("requested"), False, None, o.value)


# --- items.search / items.get / items.history


@dataclass(frozen=True)
class SearchHit:
    id: int
    uuid: str  # the same on every replica ("" if the daemon has not mapped it yet)
    source_type: SqliteValue
    source_id: SqliteValue
    title: SqliteValue
    url: SqliteValue
    author: SqliteValue
    created_at: SqliteValue
    rank: float  # bm25: lower is better
    snippet: str  # the best-matching text, matched terms between the highlight markers
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_object(o: _Object) -> SearchHit:
        return SearchHit(
            o.integer("id"),
            o.text("uuid"),
            o.sqlite("source_type"),
            o.sqlite("source_id"),
            o.sqlite("title"),
            o.sqlite("url"),
            o.sqlite("author"),
            o.sqlite("created_at"),
            o.number("rank"),
            o.text("snippet"),
            o.value,
        )


@dataclass(frozen=True)
class SearchResult:
    query: str
    total: int  # matches in all, not only those in `hits`
    offset: int
    hits: tuple[SearchHit, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> SearchResult:
        o = _Object(value, "items.search")
        return SearchResult(
            o.text("query"),
            o.integer("total"),
            o.integer("offset"),
            tuple(SearchHit.from_object(h) for h in o.objects("hits")),
            o.value,
        )


# Columns items.get adds to the row's own.
_ITEM_EXTRAS = ("uuid", "tags", "history_count")


@dataclass(frozen=True)
class Item:
    """An items row; `columns` has every column as stored (the schema may have more)."""

    id: int
    uuid: str
    source_type: SqliteValue
    source_id: SqliteValue
    url: SqliteValue
    title: SqliteValue
    content: SqliteValue
    author: SqliteValue
    created_at: SqliteValue
    fetched_at: SqliteValue
    is_own_content: SqliteValue
    metadata: SqliteValue  # JSON text, as the app wrote it
    parent_id: SqliteValue  # None in a v1 database, which has no such column
    tags: tuple[str, ...]  # names, sorted
    history_count: int  # earlier versions in item_history
    columns: Mapping[str, SqliteValue]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> Item:
        o = _Object(value, "items.get")
        row = _Object({k: v for k, v in o.value.items() if k not in _ITEM_EXTRAS}, "items.get")
        return Item(
            id=o.integer("id"),
            uuid=o.text("uuid"),
            source_type=o.sqlite("source_type"),
            source_id=o.sqlite("source_id"),
            url=o.sqlite("url"),
            title=o.sqlite("title"),
            content=o.sqlite("content"),
            author=o.sqlite("author"),
            created_at=o.sqlite("created_at"),
            fetched_at=o.sqlite("fetched_at"),
            is_own_content=o.sqlite("is_own_content"),
            metadata=o.sqlite("metadata"),
            parent_id=o.sqlite("parent_id"),
            tags=o.strings("tags"),
            history_count=o.integer("history_count"),
            columns=row.columns(),
            raw=o.value,
        )


@dataclass(frozen=True)
class HistoryEntry:
    """An item_history row: the values an item had before a change."""

    id: int
    item_id: int
    changed_at: SqliteValue
    change_type: SqliteValue
    change_reason: SqliteValue
    title_old: SqliteValue
    content_old: SqliteValue
    author_old: SqliteValue
    url_old: SqliteValue
    metadata_old: SqliteValue
    is_own_content_old: SqliteValue
    parent_id_old: SqliteValue
    columns: Mapping[str, SqliteValue]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_object(o: _Object) -> HistoryEntry:
        return HistoryEntry(
            o.integer("id"),
            o.integer("item_id"),
            o.sqlite("changed_at"),
            o.sqlite("change_type"),
            o.sqlite("change_reason"),
            o.sqlite("title_old"),
            o.sqlite("content_old"),
            o.sqlite("author_old"),
            o.sqlite("url_old"),
            o.sqlite("metadata_old"),
            o.sqlite("is_own_content_old"),
            o.sqlite("parent_id_old"),
            o.columns(),
            o.value,
        )


@dataclass(frozen=True)
class ItemHistory:
    item_id: int
    history: tuple[HistoryEntry, ...]  # newest first
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> ItemHistory:
        o = _Object(value, "items.history")
        return ItemHistory(
            o.integer("item_id"),
            tuple(HistoryEntry.from_object(h) for h in o.objects("history")),
            o.value,
        )


# --- conflicts.list / conflicts.resolve


@dataclass(frozen=True)
class ConflictSide:
    value: Any  # JSON; an exact SQLite value JSON cannot carry comes as ["class", "value"]
    origin: str | None  # replica id; None for a writer that is no replica (psql...)
    replica: str | None  # its name, when known

    @staticmethod
    def from_object(o: _Object) -> ConflictSide:
        if "value" not in o.value:
            raise MalformedAnswerError(f'{o.where}: "value" is missing')
        return ConflictSide(o.value["value"], o.optional_text("origin"), o.optional_text("replica"))


@dataclass(frozen=True)
class Conflict:
    """Two replicas edited one column of one row from the same start; the later push won."""

    id: int
    table: str
    row_uuid: str
    column: str  # "*": the row was deleted while another replica edited it
    local_id: int | None  # the row's number here, when this replica has it
    title: str | None  # the item's title here, for items
    winner: ConflictSide
    loser: ConflictSide
    detected_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None  # "kept winner" / "restored loser"
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_object(o: _Object) -> Conflict:
        return Conflict(
            o.integer("id"),
            o.text("table"),
            o.text("row_uuid"),
            o.text("column"),
            o.optional_integer("local_id"),
            o.optional_text("title"),
            ConflictSide.from_object(o.obj("winner")),
            ConflictSide.from_object(o.obj("loser")),
            o.time("detected_at"),
            o.time("resolved_at"),
            o.optional_text("resolution"),
            o.value,
        )


@dataclass(frozen=True)
class ConflictList:
    conflicts: tuple[Conflict, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> ConflictList:
        o = _Object(value, "conflicts.list")
        return ConflictList(tuple(Conflict.from_object(c) for c in o.objects("conflicts")), o.value)


@dataclass(frozen=True)
class Resolution:
    id: int
    table: str
    row_id: str  # the row's UUID
    column: str
    resolution: str  # "kept winner" / "restored loser"
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> Resolution:
        o = _Object(value, "conflicts.resolve")
        return Resolution(
            o.integer("id"),
            o.text("table"),
            o.text("row_id"),
            o.text("column"),
            o.text("resolution"),
            o.value,
        )


# --- verify


@dataclass(frozen=True)
class VerifyProgress:
    """A verify.progress notification: `done` of `total` tables compared."""

    table: str
    done: int
    total: int

    @staticmethod
    def from_json(value: Any) -> VerifyProgress:
        o = _Object(value, "verify.progress")
        return VerifyProgress(o.text("table"), o.integer("done"), o.integer("total"))


@dataclass(frozen=True)
class TableComparison:
    table: str
    local_rows: int
    upstream_rows: int
    matches: bool
    missing_locally: tuple[str, ...]  # UUIDs
    missing_upstream: tuple[str, ...]
    different: tuple[str, ...]
    repaired: int  # pushed + fetched
    pushed: int  # values Postgres never had, sent as local changes
    fetched: int  # Postgres's newer values (or its deletes), taken

    @staticmethod
    def from_object(o: _Object) -> TableComparison:
        return TableComparison(
            o.text("table"),
            o.integer("local_rows"),
            o.integer("upstream_rows"),
            o.boolean("matches"),
            o.strings("missing_locally"),
            o.strings("missing_upstream"),
            o.strings("different"),
            o.integer("repaired"),
            o.integer("pushed"),
            o.integer("fetched"),
        )


@dataclass(frozen=True)
class VerifyReport:
    matches: bool
    repair: bool
    pending_local_rows: int  # rows with local edits not pushed yet, left out
    tables: tuple[TableComparison, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any) -> VerifyReport:
        o = _Object(value, "verify")
        return VerifyReport(
            o.boolean("matches"),
            o.boolean("repair"),
            o.integer("pending_local_rows"),
            tuple(TableComparison.from_object(t) for t in o.objects("tables")),
            o.value,
        )


# --- events.subscribe


@dataclass(frozen=True)
class Event:
    """One sync event. `type` "pushed" has counts (PushCounts) and outbox_depth;
    "pulled" has counts (PullCounts); "state" has state, previous and detail."""

    type: str
    at: datetime | None
    counts: PushCounts | PullCounts | None
    outbox_depth: int | None
    state: str | None
    previous: str | None
    detail: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @staticmethod
    def from_json(value: Any, where: str = "event") -> Event:
        o = _Object(value, where)
        kind = o.text("type")
        counts: PushCounts | PullCounts | None = None
        if kind == "pushed":
            counts = PushCounts.from_object(o.obj("counts"))
        elif kind == "pulled":
            counts = PullCounts.from_object(o.obj("counts"))
        is_state = kind == "state"
        return Event(
            type=kind,
            at=o.time("at"),
            counts=counts,
            outbox_depth=o.integer("outbox_depth") if kind == "pushed" else None,
            state=o.text("state") if is_state else None,
            previous=o.text("previous") if is_state else None,
            detail=o.text("detail") if is_state else None,
            raw=o.value,
        )
