"""Talk to lestash-syncd from Python: a typed client for its control socket, and
the Le Stash plugin that adds `lestash sync …` (lestash_sync_client.plugin).

    from lestash_sync_client import SyncClient, DaemonNotRunningError

    client = SyncClient()               # the socket lestash-syncd uses (sync.toml, XDG_RUNTIME_DIR)
    print(client.status().summary)
    for hit in client.items_search("okapi", limit=5).hits:
        print(hit.id, hit.title, hit.snippet)

The client needs the standard library only; the plugin needs typer and rich,
which Le Stash brings. The protocol: docs/protocol.md in lestash-sync.
"""

from .client import PROTOCOL_VERSION, Subscription, SyncClient
from .errors import (
    BadQueryError,
    CannotConnectError,
    ConnectionLostError,
    DaemonNotRunningError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    LestashSyncError,
    MalformedAnswerError,
    MethodNotFoundError,
    NoAnswerError,
    NoSuchItemError,
    ParseError,
    PausedError,
    PermissionDeniedError,
    RequestTooLargeError,
    RpcError,
    SocketConfigError,
    TimedOutError,
    UnavailableError,
)
from .paths import default_config_path, default_socket_path, resolve_socket_path
from .results import (
    STATES,
    Blob,
    Conflict,
    ConflictList,
    ConflictSide,
    Event,
    Hello,
    HistoryEntry,
    Item,
    ItemHistory,
    LastPull,
    LastPush,
    Metrics,
    PostgresStatus,
    PullCounts,
    PushCounts,
    Replica,
    Resolution,
    SchemaVersions,
    SearchHit,
    SearchResult,
    SqliteValue,
    Status,
    SyncNowResult,
    TableComparison,
    VerifyProgress,
    VerifyReport,
)

__version__ = "0.1.0"
