"""What can go wrong talking to lestash-syncd, one exception class per kind.

Everything this package raises derives from LestashSyncError. The daemon's
own errors (JSON-RPC error responses, docs/protocol.md "Error codes") are
RpcError, with one subclass per documented code; the rest are about reaching
the daemon or reading its answer.
"""

from __future__ import annotations

from typing import Any


class LestashSyncError(Exception):
    """Base of every error raised by lestash_sync_client."""


class SocketConfigError(LestashSyncError):
    """The socket path cannot be worked out: sync.toml unreadable, a bad path."""


class CannotConnectError(LestashSyncError):
    """The control socket exists but refuses us (permissions, path too long...)."""


class DaemonNotRunningError(CannotConnectError):
    """Nothing listens on the control socket (no socket file, or refused)."""

    def __init__(self, socket_path: str) -> None:
        # The same advice as `lestash-sync` (src/control/control_client.cpp).
        super().__init__(
            f"lestash-syncd is not running (nothing listens on {socket_path}) — start it with "
            "`systemctl --user start lestash-syncd`, or run `lestash-syncd` in a terminal; "
            "--socket picks another socket"
        )
        self.socket_path = socket_path


class MalformedAnswerError(LestashSyncError):
    """The daemon's answer is not the protocol: not JSON, a wrong id, a cut line..."""


class ConnectionLostError(LestashSyncError):
    """The daemon closed the connection before answering (it may be stopping)."""


class NoAnswerError(LestashSyncError):
    """No answer arrived within the client's own timeout."""


class RpcError(LestashSyncError):
    """The daemon answered with a JSON-RPC error.

    `code` is the JSON-RPC code, `message` the daemon's text (written for a
    person: what went wrong and what to do), `data` its optional details.
    """

    code: int = 0

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @staticmethod
    def from_error(error: dict[str, Any]) -> RpcError:
        """The exception for a response's "error" member (already checked)."""
        code, message, data = error["code"], error["message"], error.get("data")
        cls = _BY_CODE.get(code, RpcError)
        return cls(code, message, data)


class ParseError(RpcError):
    """-32700: the daemon could not read our request as JSON."""

    code = -32700


class InvalidRequestError(RpcError):
    """-32600: not a JSON-RPC 2.0 request, or it did not arrive in time."""

    code = -32600


class MethodNotFoundError(RpcError):
    """-32601: the daemon does not know the method (an older daemon?)."""

    code = -32601


class InvalidParamsError(RpcError):
    """-32602: a param is missing, unknown, of the wrong type or out of range."""

    code = -32602


class InternalError(RpcError):
    """-32603: a bug in the daemon; its log has the details."""

    code = -32603


class UnavailableError(RpcError):
    """-32000: Postgres unreachable or not configured, the daemon stopping, too many clients."""

    code = -32000


class BadQueryError(RpcError):
    """-32001: the FTS5 search query is invalid; `sqlite_reason` has SQLite's words."""

    code = -32001

    @property
    def query(self) -> str | None:
        return self.data.get("query") if isinstance(self.data, dict) else None

    @property
    def sqlite_reason(self) -> str | None:
        return self.data.get("sqlite") if isinstance(self.data, dict) else None


class NoSuchItemError(RpcError):
    """-32002: no such item in this replica."""

    code = -32002


class TimedOutError(RpcError):
    """-32003: `sync.now` with wait did not catch up in time; `status` says why."""

    code = -32003

    @property
    def status(self) -> Any:
        """The daemon's status when it gave up (a Status, or None if absent)."""
        from .results import Status  # results imports nothing from here

        return Status.from_json(self.data) if isinstance(self.data, dict) else None


class PausedError(RpcError):
    """-32004: sync is paused; `sync_resume()` first."""

    code = -32004


class RequestTooLargeError(RpcError):
    """-32005: the request line was longer than 1 MiB; the daemon closed the connection."""

    code = -32005


class PermissionDeniedError(RpcError):
    """-32006: the daemon serves another user; it closed the connection."""

    code = -32006


_BY_CODE: dict[int, type[RpcError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequestError,
        MethodNotFoundError,
        InvalidParamsError,
        InternalError,
        UnavailableError,
        BadQueryError,
        NoSuchItemError,
        TimedOutError,
        PausedError,
        RequestTooLargeError,
        PermissionDeniedError,
    )
}
