"""A client for lestash-syncd's control socket (docs/protocol.md), standard library only.

One method per control method, named after it ("items.search" is
items_search), each returning a typed result (results.py) or raising an
error from errors.py. Every call opens its own connection and closes it
after the answer: the daemon closes connections idle for longer than
[control] request_timeout_seconds, and a connection costs next to nothing.
events_subscribe() keeps its connection for as long as you read events.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from typing import Any, Callable, Iterator, Literal

from .errors import (
    CannotConnectError,
    ConnectionLostError,
    DaemonNotRunningError,
    MalformedAnswerError,
    NoAnswerError,
    RpcError,
)
from .paths import resolve_socket_path
from .results import (
    ConflictList,
    Event,
    Hello,
    Item,
    ItemHistory,
    Metrics,
    Resolution,
    SearchResult,
    Status,
    SyncNowResult,
    VerifyProgress,
    VerifyReport,
)

PROTOCOL_VERSION = 1

# An answer line longer than this is not one the daemon would send.
_MAX_ANSWER_BYTES = 256 * 1024 * 1024


class _Connection:
    """One connection: requests out, newline-delimited JSON messages in."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._buffer = bytearray()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            self._sock.close()
            raise DaemonNotRunningError(path) from None
        except OSError as e:
            self._sock.close()
            hint = " — the daemon runs as another user" if isinstance(e, PermissionError) else ""
            raise CannotConnectError(
                f"cannot connect to lestash-syncd at {path}: {e.strerror or e}{hint}"
            ) from None

    def close(self) -> None:
        self._sock.close()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
        except (BrokenPipeError, ConnectionResetError):
            # The daemon may have said why before closing (too many clients, another user).
            pass

    def read_message(self, deadline: float | None) -> dict[str, Any] | None:
        """The next message; None when the daemon closed the connection between messages."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                return _parse_line(line)
            if len(self._buffer) > _MAX_ANSWER_BYTES:
                raise MalformedAnswerError(
                    f"lestash-syncd at {self.path} sent more than {_MAX_ANSWER_BYTES} bytes "
                    "without a newline: not the control protocol"
                )
            chunk = self._receive(deadline)
            if not chunk:
                if self._buffer:
                    raise MalformedAnswerError(
                        f"lestash-syncd at {self.path} closed the connection in the middle of "
                        f"an answer ({len(self._buffer)} bytes without the closing newline)"
                    )
                return None
            self._buffer += chunk

    def _receive(self, deadline: float | None) -> bytes:
        if deadline is None:
            self._sock.settimeout(None)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoAnswerError(f"lestash-syncd at {self.path} did not answer in time")
            self._sock.settimeout(left)
        try:
            return self._sock.recv(65536)
        except socket.timeout:
            raise NoAnswerError(f"lestash-syncd at {self.path} did not answer in time") from None
        except ConnectionResetError:
            return b""


def _shown(value: Any) -> str:
    """A value for an error message: its start, never megabytes of it."""
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _parse_line(line: bytes) -> dict[str, Any]:
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        shown = line[:80].decode("utf-8", "replace")
        raise MalformedAnswerError(
            f"lestash-syncd sent a line that is not JSON ({e}): {shown!r}"
        ) from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise MalformedAnswerError(
            f"lestash-syncd sent something that is not JSON-RPC 2.0: {line[:80]!r}"
        )
    return message


def _error_of(message: dict[str, Any]) -> RpcError:
    error = message["error"]
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("code"), int)
        or isinstance(error.get("code"), bool)
        or not isinstance(error.get("message"), str)
    ):
        raise MalformedAnswerError(
            f"lestash-syncd sent an error without a code and message: {_shown(error)}"
        )
    return RpcError.from_error(error)


class SyncClient:
    """Talks to one lestash-syncd.

    `socket_path`: the control socket (None: sync.toml's [control] socket, else
    the default, see paths.resolve_socket_path; `config` names another sync.toml).
    `timeout`: seconds to wait for an ordinary answer (None: no limit).
    `client_name`: sent with hello, shows in the daemon's log.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
        timeout: float | None = 600.0,
        client_name: str = "lestash-sync-client",
    ) -> None:
        self.socket_path = resolve_socket_path(socket_path, config)
        self.timeout = timeout
        self.client_name = client_name
        self._ids = itertools.count(1)

    # --- the raw call, for every method

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None | Literal["default"] = "default",
        on_notification: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Sends one request and returns its "result" as JSON.

        Notifications arriving meanwhile (verify.progress) go to `on_notification`
        as whole messages. Raises the RpcError subclass for the daemon's error
        code, MalformedAnswerError, ConnectionLostError or NoAnswerError.
        """
        connection = _Connection(self.socket_path)
        try:
            return self._exchange(connection, method, params, timeout, on_notification)
        finally:
            connection.close()

    def _exchange(
        self,
        connection: _Connection,
        method: str,
        params: dict[str, Any] | None,
        timeout: float | None | Literal["default"],
        on_notification: Callable[[dict[str, Any]], None] | None,
    ) -> Any:
        request_id = next(self._ids)
        connection.send(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        )
        limit = self.timeout if timeout == "default" else timeout
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            message = connection.read_message(deadline)
            if message is None:
                raise ConnectionLostError(
                    f"lestash-syncd closed the connection before answering {method} "
                    "(is it stopping?)"
                )
            if "id" not in message:
                if not isinstance(message.get("method"), str):
                    raise MalformedAnswerError(
                        "lestash-syncd sent a message with neither id nor method: "
                        + _shown(message)
                    )
                if on_notification:
                    on_notification(message)
                continue
            answered = message["id"]
            # id null: an error about the connection itself (too large, another user, timeout).
            if answered is not None and (answered != request_id or isinstance(answered, bool)):
                raise MalformedAnswerError(
                    f"lestash-syncd answered request id {_shown(answered)}, but the request "
                    f"sent was id {request_id}"
                )
            if "error" in message:
                raise _error_of(message)
            if answered is None or "result" not in message:
                raise MalformedAnswerError(
                    f"lestash-syncd sent an answer without a result: {_shown(message)}"
                )
            return message["result"]

    # --- the methods (docs/protocol.md, "Methods")

    def hello(self, protocol: int = PROTOCOL_VERSION) -> Hello:
        """The daemon's name, version, protocol version and methods."""
        return Hello.from_json(
            self.call("hello", {"client": self.client_name, "protocol": protocol})
        )

    def version(self) -> Hello:
        """The same as hello (the protocol's alias)."""
        return Hello.from_json(self.call("version", {"client": self.client_name}))

    def status(self) -> Status:
        return Status.from_json(self.call("status"))

    def metrics(self) -> Metrics:
        return Metrics.from_json(self.call("metrics"))

    def sync_now(self, wait: bool = False, timeout_ms: int = 60000) -> SyncNowResult:
        """Asks for a sync cycle now. With `wait`, returns once caught up (a full cycle
        begun after the request, the outbox empty, idle), or raises TimedOutError after
        `timeout_ms` (its `status` says why). PausedError while paused."""
        params: dict[str, Any] = {"wait": wait, "timeout_ms": timeout_ms}
        # The daemon answers by timeout_ms; our own limit only guards against a hung daemon.
        limit = None if self.timeout is None else (timeout_ms / 1000 if wait else 0) + self.timeout
        return SyncNowResult.from_json(self.call("sync.now", params, timeout=limit))

    def sync_pause(self) -> bool:
        """Stops pushing and pulling (local changes keep being captured). Returns True."""
        return self._paused(self.call("sync.pause"))

    def sync_resume(self) -> bool:
        """Syncs again after sync_pause. Returns False (not paused)."""
        return self._paused(self.call("sync.resume"))

    @staticmethod
    def _paused(result: Any) -> bool:
        if not isinstance(result, dict) or not isinstance(result.get("paused"), bool):
            raise MalformedAnswerError(f'expected {{"paused": true|false}}, got {_shown(result)}')
        return result["paused"]

    def items_search(
        self,
        query: str,
        limit: int = 20,
        offset: int = 0,
        source: str | None = None,
        highlight: tuple[str, str] | None = None,
    ) -> SearchResult:
        """Full-text search of this replica (FTS5 query syntax), best first.
        BadQueryError for an invalid query; `highlight` goes around matched terms
        in snippets (default "[" and "]")."""
        params: dict[str, Any] = {"query": query, "limit": limit, "offset": offset}
        if source is not None:
            params["source"] = source
        if highlight is not None:
            params["highlight"] = list(highlight)
        return SearchResult.from_json(self.call("items.search", params))

    def items_get(self, item: int | str) -> Item:
        """One item by local number or UUID; NoSuchItemError when absent here."""
        return Item.from_json(self.call("items.get", {"id": item}))

    def items_history(self, item: int | str, limit: int = 100) -> ItemHistory:
        """An item's earlier versions, newest first."""
        return ItemHistory.from_json(self.call("items.history", {"id": item, "limit": limit}))

    def conflicts_list(self, all: bool = False, limit: int = 1000) -> ConflictList:  # noqa: A002
        """Open conflicts (all=True: resolved ones too). Needs Postgres (UnavailableError)."""
        return ConflictList.from_json(self.call("conflicts.list", {"all": all, "limit": limit}))

    def conflicts_resolve(self, conflict: int, keep: Literal["winner", "loser"]) -> Resolution:
        """Closes a conflict: "winner" only marks it resolved, "loser" writes the
        overwritten value back for every replica. UnavailableError with the server's
        reason for no such conflict, already resolved, or a row that is gone."""
        return Resolution.from_json(self.call("conflicts.resolve", {"id": conflict, "keep": keep}))

    def verify(
        self,
        repair: bool = False,
        on_progress: Callable[[VerifyProgress], None] | None = None,
        timeout: float | None = None,
    ) -> VerifyReport:
        """Compares every synced table with Postgres; `on_progress` gets a
        VerifyProgress per table. With `repair`, the differing rows are fetched again.
        No time limit unless `timeout` (seconds) is given: a big database takes a while."""

        def progress(message: dict[str, Any]) -> None:
            if on_progress and message.get("method") == "verify.progress":
                on_progress(VerifyProgress.from_json(message.get("params")))

        result = self.call("verify", {"repair": repair}, timeout=timeout, on_notification=progress)
        return VerifyReport.from_json(result)

    def events_subscribe(self) -> Subscription:
        """The daemon's recent events, then each new one as it happens:
        `for event in client.events_subscribe(): ...` (close it, or use `with`)."""
        connection = _Connection(self.socket_path)
        try:
            result = self._exchange(connection, "events.subscribe", None, "default", None)
            return Subscription(connection, result)
        except BaseException:
            connection.close()
            raise


class Subscription:
    """An open events.subscribe: `status` and `recent` from the answer, then an
    iterator of Event that ends when the daemon closes the connection."""

    def __init__(self, connection: _Connection, result: Any) -> None:
        if not isinstance(result, dict) or result.get("subscribed") is not True:
            raise MalformedAnswerError(
                f"events.subscribe: expected subscribed: true, got {_shown(result)}"
            )
        recent = result.get("recent")
        if not isinstance(recent, list):
            raise MalformedAnswerError('events.subscribe: "recent" must be an array')
        self._connection = connection
        self.status = Status.from_json(result.get("status"), "events.subscribe.status")
        self.recent = tuple(
            Event.from_json(e, f"events.subscribe.recent[{i}]") for i, e in enumerate(recent)
        )
        self.raw = result

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event; None after `timeout` seconds without one. Raises
        ConnectionLostError when the daemon closed the connection."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                message = self._connection.read_message(deadline)
            except NoAnswerError:
                return None
            if message is None:
                raise ConnectionLostError("lestash-syncd closed the event stream (is it stopping?)")
            if message.get("method") == "event":
                return Event.from_json(message.get("params"))
            if "error" in message:  # cut off: read too slowly, or the daemon is stopping
                raise _error_of(message)

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                event = self.next_event()
            except ConnectionLostError:
                return
            if event is not None:
                yield event

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
