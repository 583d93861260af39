"""The Le Stash plugin: `lestash sync status | now | search | show | history |
conflicts | verify | pause | resume | log | metrics`, over the control socket.

Registered on the `lestash.sources` entry-point group as "sync"; Le Stash
mounts get_commands() under that name. Output follows Le Stash's CLI (Rich
tables for lists, "Key: value" lines for one thing, red errors); `--json`
prints the daemon's answer instead. Exit codes are lestash-sync's: 0 ok,
1 the daemon answered with an error, 2 usage, 3 verify found differences,
4 `now --wait` timed out, 69 the daemon is not running.

This is the only module of the package that imports typer and rich.
"""

import enum
import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .client import SyncClient
from .errors import (
    DaemonNotRunningError,
    LestashSyncError,
    RpcError,
    SocketConfigError,
    TimedOutError,
)
from .results import Blob, Conflict, Event, SqliteValue, Status, VerifyProgress, VerifyReport

EXIT_ERROR, EXIT_USAGE, EXIT_DIFFERENT, EXIT_TIMED_OUT, EXIT_NOT_RUNNING = 1, 2, 3, 4, 69

try:  # Le Stash's base class when Le Stash is there; the same shape without it
    from lestash.plugins.base import SourcePlugin as _PluginBase
except ImportError:
    _PluginBase = object  # type: ignore[assignment,misc]


class SyncPlugin(_PluginBase):  # type: ignore[misc,valid-type]
    """lestash-syncd in the lestash CLI."""

    name = "sync"
    description = "lestash-syncd: sync status, search, history and conflicts (lestash-sync)"

    def get_commands(self) -> typer.Typer:
        return make_app()

    def sync(self, config: dict) -> Iterator[Any]:
        """Nothing to import: lestash-syncd keeps the database in sync by itself."""
        yield from ()


# --- options every command has


def _socket_option() -> Any:
    return typer.Option(
        None,
        "--socket",
        metavar="PATH",
        show_default=False,
        help="The daemon's control socket (default: [control] socket in sync.toml, else "
        "$XDG_RUNTIME_DIR/lestash/syncd.sock).",
    )


def _json_option() -> Any:
    return typer.Option(False, "--json", help="Print the daemon's JSON answer (for scripts).")


def _run(socket: Optional[str], as_json: bool, work: Callable[[SyncClient, Console], int]) -> None:
    """Runs one command: the client, the error messages and the exit code."""
    out, err = Console(), Console(stderr=True, highlight=False)
    try:
        code = work(SyncClient(socket, client_name="lestash sync"), out)
    except DaemonNotRunningError as e:
        err.print(f"[red]{escape(str(e))}[/red]")
        code = EXIT_NOT_RUNNING
    except SocketConfigError as e:
        err.print(f"[red]{escape(str(e))}[/red]")
        code = EXIT_USAGE
    except RpcError as e:
        if as_json:
            _print_json({"error": {"code": e.code, "message": e.message, "data": e.data}})
        err.print(f"[red]{escape(e.message)}[/red]")
        code = EXIT_TIMED_OUT if isinstance(e, TimedOutError) else EXIT_ERROR
    except LestashSyncError as e:
        err.print(f"[red]{escape(str(e))}[/red]")
        code = EXIT_ERROR
    if code:
        raise typer.Exit(code)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


# --- showing values


def _text(value: SqliteValue) -> str:
    if value is None:
        return "-"
    if isinstance(value, Blob):
        return f"<{len(value.data)} bytes>"
    return str(value)


def _one_line(value: Any, width: int) -> str:
    text = re.sub(r"[\r\n\t]+", " ", value if isinstance(value, str) else _text(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any, width: int = 80) -> Text:
    """A table cell of the user's text: never read as Rich markup ("[b]" stays "[b]")."""
    return Text(_one_line(value, width))


def _ago(at: Optional[datetime]) -> str:
    if at is None:
        return "never"
    seconds = max(0, int((datetime.now(timezone.utc) - at).total_seconds()))
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


_STATE_STYLE = {"idle": "green", "offline": "red", "error": "red"}


def _print_status(s: Status, out: Console) -> None:
    style = _STATE_STYLE.get(s.state, "yellow")
    out.print(
        f"[bold]lestash-syncd {escape(s.version)}[/bold]  [{style}]{escape(s.state)}[/{style}]"
    )
    if s.detail:
        out.print(f"  [dim]{escape(s.detail)}[/dim]")
    pg = s.postgres
    postgres = (
        "not configured (capturing locally only)"
        if pg.target is None
        else f"{pg.target} ({'connected' if pg.connected else 'not connected'}, "
        f"schema {pg.schema_version})"
    )
    lines = [
        ("Replica", f"{s.replica.name} ({s.replica.id})"),
        ("Database", s.database),
        ("Postgres", postgres),
        ("Last push", f"{_ago(s.last_push.at)} ({s.last_push.counts.changes} changes)"),
        (
            "Last pull",
            f"{_ago(s.last_pull.at)} ({s.last_pull.counts.applied} applied, "
            f"{s.last_pull.counts.deleted} deleted)",
        ),
        ("Outbox", f"{s.outbox_depth} waiting, oldest {s.lag_seconds:.0f} s"),
        (
            "Errors",
            f"{s.errors_since_start} since start; {s.dead_letters} changes refused " "by Postgres",
        ),
    ]
    for key, value in lines:
        out.print(f"[bold]{key}:[/bold] {escape(value)}")


# Highlight markers for search snippets: control characters the text will not have.
_MARK_START, _MARK_END = "\x02", "\x03"


def _snippet(snippet: str) -> Text:
    text, marked = Text(), False
    for part in re.split(f"([{_MARK_START}{_MARK_END}])", _one_line(snippet, 200)):
        if part in (_MARK_START, _MARK_END):
            marked = part == _MARK_START
        elif part:
            text.append(part, style="bold yellow" if marked else None)
    return text


def _describe_event(e: Event) -> str:
    c = e.raw.get("counts", {})
    if e.type == "pushed":
        refused = f", {c['refused']} refused" if c.get("refused") else ""
        return f"pushed {c['changes']} changes ({c['rows']} rows, {c['deleted']} deleted{refused})"
    if e.type == "pulled":
        held = f", {c['held']} held for local edits" if c.get("held") else ""
        return f"pulled {c['applied']} rows, {c['deleted']} deleted{held}"
    if e.type == "state":
        return f"state {e.previous} -> {e.state}" + (f": {e.detail}" if e.detail else "")
    return json.dumps(dict(e.raw), ensure_ascii=False)


def _print_event(e: Event, out: Console, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(dict(e.raw), ensure_ascii=False))
    else:
        at = e.at.strftime("%H:%M:%S") if e.at else "--:--:--"
        out.print(f"[dim]{at}[/dim] {escape(_describe_event(e))}")


def _side(conflict_value: Any, replica: Optional[str]) -> Text:
    value = conflict_value if isinstance(conflict_value, str) else json.dumps(conflict_value)
    text = Text(_one_line(value, 60))
    text.append(f"\nfrom {replica or 'another writer'}", style="dim")
    return text


def _conflict_row(c: Conflict, with_resolution: bool) -> List[Any]:
    row: List[Any] = [
        str(c.id),
        _cell(f"{c.table}.{c.column}"),
        str(c.local_id) if c.local_id is not None else c.row_uuid,
        _cell(c.title, 40),
        _side(c.winner.value, c.winner.replica),
        _side(c.loser.value, c.loser.replica),
        _ago(c.detected_at),
    ]
    if with_resolution:
        row.append(_cell(c.resolution or "open"))
    return row


def _verify_with_progress(client: SyncClient, repair: bool) -> VerifyReport:
    """verify, with a spinner naming the table on stderr when stderr is a terminal."""
    err = Console(stderr=True)
    if not err.is_terminal:
        return client.verify(repair=repair)
    with err.status("comparing with Postgres…") as spinner:

        def progress(p: VerifyProgress) -> None:
            spinner.update(f"comparing with Postgres: {p.done}/{p.total} tables ({p.table})")

        return client.verify(repair=repair, on_progress=progress)


class Keep(str, enum.Enum):
    winner = "winner"
    loser = "loser"


# --- the commands


def make_app() -> typer.Typer:
    app = typer.Typer(
        help="lestash-syncd, the sync daemon: status, sync now, search, "
        "history, conflicts, verify.",
        no_args_is_help=True,
    )

    @app.command("status")
    def status_cmd(
        socket: Optional[str] = _socket_option(), as_json: bool = _json_option()
    ) -> None:
        """The daemon's state, Postgres, last push and pull, outbox and errors."""

        def work(client: SyncClient, out: Console) -> int:
            s = client.status()
            _print_json(s.raw) if as_json else _print_status(s, out)
            return 0

        _run(socket, as_json, work)

    @app.command("now")
    def now_cmd(
        wait: bool = typer.Option(
            False, "--wait", help="Block until caught up (outbox empty, everything pulled)."
        ),
        timeout: float = typer.Option(
            60.0,
            "--timeout",
            min=0,
            max=86400,
            help="Seconds to wait with --wait (exit 4 past them).",
        ),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """Sync now."""

        def work(client: SyncClient, out: Console) -> int:
            r = client.sync_now(wait=wait, timeout_ms=int(timeout * 1000))
            if as_json:
                _print_json(r.raw)
            elif r.caught_up and r.status:
                out.print(f"[green]Caught up:[/green] {escape(r.status.summary)}")
            else:
                out.print("[green]Sync requested.[/green]")
            return 0

        _run(socket, as_json, work)

    @app.command("pause")
    def pause_cmd(socket: Optional[str] = _socket_option(), as_json: bool = _json_option()) -> None:
        """Stop syncing (changes keep being captured)."""

        def work(client: SyncClient, out: Console) -> int:
            paused = client.sync_pause()
            if as_json:
                _print_json({"paused": paused})
            else:
                out.print("[yellow]Paused:[/yellow] changes are captured and wait in the outbox.")
            return 0

        _run(socket, as_json, work)

    @app.command("resume")
    def resume_cmd(
        socket: Optional[str] = _socket_option(), as_json: bool = _json_option()
    ) -> None:
        """Sync again after pause."""

        def work(client: SyncClient, out: Console) -> int:
            paused = client.sync_resume()
            _print_json({"paused": paused}) if as_json else out.print("[green]Resumed.[/green]")
            return 0

        _run(socket, as_json, work)

    @app.command("search")
    def search_cmd(
        words: List[str] = typer.Argument(..., help="Search terms (FTS5 query syntax)."),
        limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="Results to show."),
        offset: int = typer.Option(0, "--offset", min=0, help="Results to skip."),
        source: Optional[str] = typer.Option(
            None, "--source", "-s", show_default=False, help="Only items of this source type."
        ),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """Full-text search of this replica, best first."""
        query = " ".join(words)

        def work(client: SyncClient, out: Console) -> int:
            marks = None if as_json else (_MARK_START, _MARK_END)
            r = client.items_search(
                query, limit=limit, offset=offset, source=source, highlight=marks
            )
            if as_json:
                _print_json(r.raw)
                return 0
            if not r.hits:
                out.print(f"[dim]No items found matching '{escape(query)}'.[/dim]")
                return 0
            table = Table(show_header=True, header_style="bold")
            table.add_column("ID", style="dim")
            table.add_column("Type")
            table.add_column("Title", max_width=40)
            table.add_column("Match")
            for h in r.hits:
                table.add_row(
                    str(h.id), _cell(h.source_type), _cell(h.title, 60), _snippet(h.snippet)
                )
            out.print(table)
            out.print(f"[dim]{offset + 1}-{offset + len(r.hits)} of {r.total} matches[/dim]")
            return 0

        _run(socket, as_json, work)

    @app.command("show")
    def show_cmd(
        item: str = typer.Argument(..., help="The item's number or UUID."),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """One item with its tags."""

        def work(client: SyncClient, out: Console) -> int:
            i = client.items_get(item)
            if as_json:
                _print_json(i.raw)
                return 0
            fields = [
                ("ID", str(i.id)),
                ("UUID", i.uuid),
                ("Source", _text(i.source_type)),
                ("Source ID", i.source_id),
                ("URL", i.url),
                ("Title", i.title),
                ("Author", i.author),
                ("Created", i.created_at),
                ("Fetched", i.fetched_at),
                ("Parent", i.parent_id),
                ("Tags", ", ".join(i.tags) or None),
                ("History", f"{i.history_count} earlier versions"),
            ]
            for key, value in fields:
                if value is not None:
                    out.print(f"[bold]{key}:[/bold] {escape(_text(value))}")
            out.print()
            out.print("[bold]Content:[/bold]")
            out.print(Text(_text(i.content)))
            if isinstance(i.metadata, str) and i.metadata:
                out.print()
                out.print("[bold]Metadata:[/bold]")
                try:
                    out.print(
                        Text(json.dumps(json.loads(i.metadata), indent=2, ensure_ascii=False))
                    )
                except ValueError:
                    out.print(Text(i.metadata))
            return 0

        _run(socket, as_json, work)

    @app.command("history")
    def history_cmd(
        item: str = typer.Argument(..., help="The item's number or UUID."),
        limit: int = typer.Option(50, "--limit", "-n", min=1, max=100000, help="Rows to show."),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """An item's earlier versions, newest first."""

        def work(client: SyncClient, out: Console) -> int:
            r = client.items_history(item, limit=limit)
            if as_json:
                _print_json(r.raw)
                return 0
            if not r.history:
                out.print(f"[dim]No history for item {escape(item)}.[/dim]")
                return 0
            table = Table(show_header=True, header_style="bold")
            table.add_column("Changed", style="dim")
            table.add_column("Change")
            table.add_column("Reason")
            table.add_column("Title before", max_width=30)
            table.add_column("Content before")
            for h in r.history:
                table.add_row(
                    _cell(h.changed_at),
                    _cell(h.change_type),
                    _cell(h.change_reason),
                    _cell(h.title_old, 40),
                    _cell(h.content_old),
                )
            out.print(table)
            return 0

        _run(socket, as_json, work)

    conflicts = typer.Typer(
        help="Concurrent edits of the same column (open ones).", invoke_without_command=True
    )
    app.add_typer(conflicts, name="conflicts")

    @conflicts.callback()
    def conflicts_cmd(
        ctx: typer.Context,
        all_: bool = typer.Option(False, "--all", help="Include resolved conflicts."),
        limit: int = typer.Option(
            1000, "--limit", "-n", min=1, max=100000, help="Conflicts to show."
        ),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """Concurrent edits of the same column: the value kept and the one overwritten."""
        if ctx.invoked_subcommand is not None:
            return

        def work(client: SyncClient, out: Console) -> int:
            r = client.conflicts_list(all=all_, limit=limit)
            if as_json:
                _print_json(r.raw)
                return 0
            if not r.conflicts:
                out.print(f"[dim]No {'' if all_ else 'open '}conflicts.[/dim]")
                return 0
            table = Table(show_header=True, header_style="bold")
            for column in ("ID", "Column", "Row", "Title", "Kept", "Overwritten", "Detected"):
                table.add_column(column, style="dim" if column == "ID" else None)
            if all_:
                table.add_column("Resolution")
            for c in r.conflicts:
                table.add_row(*_conflict_row(c, all_))
            out.print(table)
            out.print(
                "[dim]Resolve with 'lestash sync conflicts resolve ID --keep "
                "winner|loser'.[/dim]"
            )
            return 0

        _run(socket, as_json, work)

    @conflicts.command("resolve")
    def resolve_cmd(
        conflict: int = typer.Argument(..., min=1, help="The conflict's number."),
        keep: Keep = typer.Option(
            ...,
            "--keep",
            case_sensitive=False,
            help="winner (keep the current value) or loser (restore the " "overwritten one).",
        ),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """Close a conflict."""

        def work(client: SyncClient, out: Console) -> int:
            r = client.conflicts_resolve(conflict, keep.value)
            if as_json:
                _print_json(r.raw)
            else:
                out.print(f"[green]Conflict {r.id}:[/green] {escape(r.resolution)}")
            return 0

        _run(socket, as_json, work)

    @app.command("verify")
    def verify_cmd(
        repair: bool = typer.Option(False, "--repair", help="Fetch the rows that differ again."),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """Compare this replica with Postgres, row by row (exit 3 on differences)."""

        def work(client: SyncClient, out: Console) -> int:
            r = _verify_with_progress(client, repair)
            if as_json:
                _print_json(r.raw)
            else:
                table = Table(show_header=True, header_style="bold")
                table.add_column("Table")
                table.add_column("Local", justify="right")
                table.add_column("Upstream", justify="right")
                table.add_column("Result")
                for t in r.tables:
                    result = (
                        Text("same", style="green")
                        if t.matches
                        else Text(
                            f"{len(t.missing_locally)} missing here, {len(t.missing_upstream)} "
                            f"missing upstream, {len(t.different)} different"
                            + (
                                f", {t.repaired} repaired ({t.pushed} pushed, {t.fetched} fetched)"
                                if repair
                                else ""
                            ),
                            style="red",
                        )
                    )
                    table.add_row(_cell(t.table), str(t.local_rows), str(t.upstream_rows), result)
                out.print(table)
                if r.pending_local_rows:
                    out.print(
                        f"[dim]{r.pending_local_rows} local changes not pushed yet were "
                        "left out.[/dim]"
                    )
                if not r.matches and not repair:
                    out.print(
                        "Run 'lestash sync verify --repair': values Postgres never had are "
                        "pushed, newer ones fetched."
                    )
            return 0 if r.matches or repair else EXIT_DIFFERENT

        _run(socket, as_json, work)

    @app.command("log")
    def log_cmd(
        follow: bool = typer.Option(
            False, "--follow", "-f", help="Keep printing events as they happen."
        ),
        socket: Optional[str] = _socket_option(),
        as_json: bool = _json_option(),
    ) -> None:
        """Recent sync events."""

        def work(client: SyncClient, out: Console) -> int:
            with client.events_subscribe() as events:
                for e in events.recent:
                    _print_event(e, out, as_json)
                if not events.recent and not follow and not as_json:
                    out.print("[dim]No sync events since the daemon started.[/dim]")
                if follow:
                    try:
                        for e in events:
                            _print_event(e, out, as_json)
                    except KeyboardInterrupt:
                        pass
            return 0

        _run(socket, as_json, work)

    @app.command("metrics")
    def metrics_cmd(
        socket: Optional[str] = _socket_option(), as_json: bool = _json_option()
    ) -> None:
        """The daemon's counters in Prometheus text format."""

        def work(client: SyncClient, out: Console) -> int:
            m = client.metrics()
            _print_json(m.raw) if as_json else typer.echo(m.text, nl=False)
            return 0

        _run(socket, as_json, work)

    return app
