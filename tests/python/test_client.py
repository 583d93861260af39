"""lestash_sync_client against real lestash-syncd daemons, a real private
Postgres and real sockets: every control method, the daemon's errors as typed
exceptions, a daemon that is not running, the socket path rules, and answers
that break the protocol (from a scripted unix-socket server).

Run by CTest (python-client); by hand:
    LESTASH_SYNCD=build/release/lestash-syncd python3 -B tests/python/test_client.py
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import unittest
from datetime import datetime
from pathlib import Path
from unittest import mock

import sync_fixtures as fx
from lestash_sync_client import (
    PROTOCOL_VERSION,
    BadQueryError,
    ConnectionLostError,
    DaemonNotRunningError,
    Event,
    InvalidParamsError,
    InvalidRequestError,
    InternalError,
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
    SyncClient,
    TimedOutError,
    UnavailableError,
    VerifyProgress,
    default_socket_path,
    resolve_socket_path,
)


class TwoReplicas(fx.DaemonCase):
    """Daemons A and B syncing through one Postgres."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.upstream = fx.postgres().new_upstream()
        cls.a = cls.daemon("a", cls.upstream)
        cls.b = cls.daemon("b", cls.upstream)

    def test_hello_and_version_name_the_daemon_and_its_methods(self) -> None:
        hello = self.a.client().hello()
        self.assertEqual(hello.daemon, "lestash-syncd")
        self.assertEqual(hello.protocol, PROTOCOL_VERSION)
        self.assertEqual(hello.version, os.environ.get("LESTASH_VERSION", hello.version))
        for method in (
            "status",
            "sync.now",
            "items.search",
            "conflicts.resolve",
            "verify",
            "events.subscribe",
        ):
            self.assertIn(method, hello.methods)
        self.assertEqual(self.a.client().version(), hello)

    def test_status_is_typed_and_never_shows_the_password(self) -> None:
        s = self.a.client().status()
        self.assertEqual(s.state, "idle")
        self.assertEqual(s.replica.name, "a")
        self.assertEqual(s.database, str(self.a.db))
        self.assertTrue(s.postgres.connected)
        self.assertEqual(s.postgres.schema_version, fx.newest_migration())
        self.assertIn("/lestash_", s.postgres.target)
        self.assertIsInstance(s.started_at, datetime)
        self.assertIsNotNone(s.started_at.tzinfo)
        self.assertGreaterEqual(s.cycles, 1)
        self.assertEqual(s.raw["state"], "idle")

    def test_metrics_are_prometheus_text(self) -> None:
        m = self.a.client().metrics()
        self.assertTrue(m.content_type.startswith("text/plain"))
        self.assertIn("# TYPE lestash_sync_pushed_changes_total counter", m.text)
        self.assertIn("lestash_sync_postgres_connected 1", m.text)

    def test_a_note_written_on_a_is_found_shown_and_has_history_on_b(self) -> None:
        note = self.a.add_note("ctl-1", "Zebra crossing", "a note about the okapi and the zebra")
        self.a.tag(note, "animals")
        self.a.write(
            "UPDATE items SET content = ? WHERE id = ?",
            ("a note about the okapi, the zebra and the quagga", note),
        )
        waited = self.a.client().sync_now(wait=True, timeout_ms=60000)
        self.assertTrue(waited.caught_up)
        self.assertEqual(waited.status.outbox_depth, 0)
        fx.eventually(
            lambda: self.b.query("SELECT count(*) FROM item_history")[0][0] == 1
            and self.b.query("SELECT count(*) FROM item_tags")[0][0] == 1,
            what="B pulling the note, its tag and its history",
        )

        found = self.b.client().items_search("okapi", highlight=("<", ">"))
        self.assertEqual(found.total, 1)
        hit = found.hits[0]
        self.assertEqual(hit.title, "Zebra crossing")
        self.assertEqual(hit.source_type, "note")
        self.assertIn("<okapi>", hit.snippet)
        self.assertEqual(len(hit.uuid), 36)
        self.assertNotEqual(hit.id, 0)
        self.assertEqual(self.b.client().items_search("okapi", source="bookmark").hits, ())
        self.assertEqual(self.b.client().items_search("okapi", offset=1).hits, ())

        for key in (hit.id, str(hit.id), hit.uuid):
            item = self.b.client().items_get(key)
            self.assertEqual(item.title, "Zebra crossing")
            self.assertEqual(item.uuid, hit.uuid)
            self.assertEqual(item.tags, ("animals",))
            self.assertEqual(item.history_count, 1)
            self.assertEqual(
                item.columns["content"], "a note about the okapi, the zebra and the quagga"
            )
            self.assertNotIn("tags", item.columns)
        history = self.b.client().items_history(hit.uuid)
        self.assertEqual(history.item_id, hit.id)
        self.assertEqual(len(history.history), 1)
        self.assertEqual(history.history[0].content_old, "a note about the okapi and the zebra")
        self.assertEqual(history.history[0].item_id, hit.id)

    def test_pause_holds_local_changes_and_resume_sends_them(self) -> None:
        client = self.a.client()
        self.assertTrue(client.sync_pause())
        try:
            fx.eventually(lambda: client.status().state == "paused", what="A pausing")
            self.a.write("INSERT INTO tags (name) VALUES ('while-paused')")
            fx.eventually(lambda: client.status().outbox_depth == 1, what="the tag captured")
            with self.assertRaises(PausedError) as raised:
                client.sync_now()
            self.assertEqual(raised.exception.code, -32004)
            self.assertIn("resume", str(raised.exception))
        finally:
            self.assertFalse(client.sync_resume())
        fx.eventually(
            lambda: self.b.query("SELECT count(*) FROM tags WHERE name = 'while-paused'")[0][0]
            == 1,
            what="B pulling the tag written while A was paused",
        )

    def test_sync_now_without_wait_is_only_a_request(self) -> None:
        r = self.a.client().sync_now()
        self.assertTrue(r.requested)
        self.assertFalse(r.caught_up)
        self.assertIsNone(r.status)

    def test_events_subscribe_yields_the_push_of_a_new_write(self) -> None:
        with self.a.client().events_subscribe() as events:
            self.assertEqual(events.status.replica.name, "a")
            self.assertTrue(all(isinstance(e, Event) for e in events.recent))
            self.assertIn("state", [e.type for e in events.recent])  # starting -> idle
            self.a.write("INSERT INTO tags (name) VALUES ('evented')")
            pushed, end = None, time.monotonic() + 60
            while pushed is None and time.monotonic() < end:
                e = events.next_event(timeout=1)
                pushed = e if e is not None and e.type == "pushed" else None
            self.assertIsNotNone(pushed, "no pushed event within 60 s")
            self.assertGreaterEqual(pushed.counts.changes, 1)
            self.assertIsNotNone(pushed.at)
            self.assertIsInstance(pushed.outbox_depth, int)

    def test_the_daemons_errors_arrive_as_typed_exceptions_with_their_code(self) -> None:
        client = self.a.client()
        with self.assertRaises(BadQueryError) as bad:
            client.items_search("zebra AND (")
        self.assertEqual(bad.exception.code, -32001)
        self.assertEqual(bad.exception.query, "zebra AND (")
        self.assertIn("syntax error", bad.exception.sqlite_reason)
        with self.assertRaises(NoSuchItemError) as missing:
            client.items_get(987654)
        self.assertEqual(missing.exception.code, -32002)
        with self.assertRaises(NoSuchItemError):
            client.items_history("00000000-0000-0000-0000-000000000000")
        with self.assertRaises(InvalidParamsError) as params:
            client.items_search("okapi", limit=0)
        self.assertIn('"limit"', str(params.exception))
        with self.assertRaises(InvalidParamsError):
            client.items_get("not-a-number")
        with self.assertRaises(InvalidParamsError):
            client.conflicts_resolve(1, "both")  # type: ignore[arg-type]
        with self.assertRaises(MethodNotFoundError) as unknown:
            client.call("items.delete", {"id": 1})
        self.assertEqual(unknown.exception.code, -32601)
        with self.assertRaises(RequestTooLargeError) as large:
            client.items_search("x" * (1024 * 1024 + 1))
        self.assertEqual(large.exception.code, -32005)
        self.assertEqual(client.status().replica.name, "a")  # and the daemon carries on
        for e in (bad, missing, params, unknown, large):
            self.assertIsInstance(e.exception, RpcError)
            self.assertIsInstance(e.exception, LestashSyncError)


class Conflicts(fx.DaemonCase):
    """A conflict made by daemon A and replica C editing one title."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.upstream = fx.postgres().new_upstream()
        cls.a = cls.daemon("a", cls.upstream)

    def test_a_conflict_is_listed_with_context_and_resolved_either_way(self) -> None:
        fx.make_conflict(self.home, self.a, self.upstream, "x")
        client = self.a.client()
        listed = client.conflicts_list()
        self.assertEqual(len(listed.conflicts), 1)
        c = listed.conflicts[0]
        self.assertEqual((c.table, c.column), ("items", "title"))
        self.assertEqual(c.winner.value, "Title from A")
        self.assertEqual(c.winner.replica, "a")
        self.assertEqual(c.loser.value, "Title from C")
        self.assertEqual(c.loser.replica, "c-x")
        self.assertEqual(c.title, "Title from A")
        self.assertIsInstance(c.local_id, int)
        self.assertEqual(len(c.row_uuid), 36)
        self.assertIsInstance(c.detected_at, datetime)
        self.assertIsNone(c.resolved_at)

        resolved = client.conflicts_resolve(c.id, "loser")
        self.assertEqual((resolved.id, resolved.resolution), (c.id, "restored loser"))
        self.assertEqual(resolved.row_id, c.row_uuid)
        fx.eventually(
            lambda: self.a.query("SELECT title FROM items WHERE source_id = 'x'")
            == [("Title from C",)],
            what="the loser's title restored on A",
        )
        self.assertEqual(client.conflicts_list().conflicts, ())
        everything = client.conflicts_list(all=True).conflicts
        self.assertEqual([x.resolution for x in everything], ["restored loser"])
        self.assertIsNotNone(everything[0].resolved_at)
        with self.assertRaises(UnavailableError) as twice:
            client.conflicts_resolve(c.id, "winner")
        self.assertIn("already resolved", str(twice.exception))
        with self.assertRaises(UnavailableError) as none:
            client.conflicts_resolve(999999, "winner")
        self.assertIn("no conflict 999999", str(none.exception))


class Verify(fx.DaemonCase):
    """verify with progress, on a replica whose upstream was changed behind its back."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.upstream = fx.postgres().new_upstream()
        cls.a = cls.daemon("a", cls.upstream)

    def test_verify_reports_progress_finds_a_difference_and_repairs_it(self) -> None:
        for i in range(5):
            self.a.add_note(f"v{i}", f"Title {i}", f"content {i}")
        self.a.client().sync_now(wait=True)
        progress: list[VerifyProgress] = []
        report = self.a.client().verify(on_progress=progress.append)
        self.assertTrue(report.matches)
        self.assertFalse(report.repair)
        self.assertEqual([p.done for p in progress], list(range(1, len(progress) + 1)))
        self.assertGreaterEqual(len(progress), 6)
        self.assertEqual(progress[-1].done, progress[-1].total)
        items = next(t for t in report.tables if t.table == "items")
        self.assertEqual((items.local_rows, items.upstream_rows), (5, 5))

        fx.tamper_upstream(fx.postgres(), self.upstream, "v3")
        differing = self.a.client().verify()
        self.assertFalse(differing.matches)
        items = next(t for t in differing.tables if t.table == "items")
        self.assertFalse(items.matches)
        self.assertEqual(len(items.different), 1)
        self.assertEqual(
            items.different[0],
            self.a.client()
            .items_get(self.a.query("SELECT id FROM items WHERE source_id = 'v3'")[0][0])
            .uuid,
        )

        repaired = self.a.client().verify(repair=True)
        self.assertTrue(repaired.repair)
        self.assertEqual(next(t for t in repaired.tables if t.table == "items").repaired, 1)
        self.assertTrue(self.a.client().verify().matches)
        self.assertEqual(
            self.a.query("SELECT title FROM items WHERE source_id = 'v3'"), [("silently changed",)]
        )


class WithoutPostgres(fx.DaemonCase):
    """A daemon with no Postgres configured: offline, capturing only."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.d = cls.daemon("offline")

    def test_methods_that_need_postgres_say_it_is_unavailable(self) -> None:
        for call in (
            lambda c: c.conflicts_list(),
            lambda c: c.verify(),
            lambda c: c.conflicts_resolve(1, "winner"),
        ):
            with self.assertRaises(UnavailableError) as raised:
                call(self.d.client())
            self.assertEqual(raised.exception.code, -32000)
            self.assertIn("no Postgres configured", str(raised.exception))

    def test_sync_now_wait_is_unavailable_at_once_rather_than_timing_out(self) -> None:
        # A long timeout: waiting for it would be -32003, not this.
        with self.assertRaises(UnavailableError) as raised:
            self.d.client().sync_now(wait=True, timeout_ms=600000)
        self.assertEqual(raised.exception.code, -32000)
        self.assertIn("no Postgres configured", str(raised.exception))
        self.assertEqual(self.d.client().status().state, "offline")

    def test_local_queries_still_work(self) -> None:
        self.d.add_note("local", "Only here", "captured, never pushed")
        hits = self.d.client().items_search("captured").hits
        self.assertEqual([h.title for h in hits], ["Only here"])
        fx.eventually(lambda: self.d.client().status().outbox_depth >= 1, what="the capture")


class PostgresUnreachable(fx.DaemonCase):
    """A daemon whose Postgres does not answer (nothing listens on port 1 of loopback)."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.d = cls.daemon(
            "unreachable", "host=127.0.0.1 port=1 dbname=lestash", wait_for=("offline",)
        )

    def test_sync_now_wait_times_out_with_the_status_saying_why(self) -> None:
        with self.assertRaises(TimedOutError) as raised:
            self.d.client().sync_now(wait=True, timeout_ms=200)
        self.assertEqual(raised.exception.code, -32003)
        self.assertEqual(raised.exception.status.state, "offline")
        self.assertTrue(raised.exception.status.detail)


class NotRunning(fx.DaemonCase):
    def assert_not_running(self, path: str) -> None:
        with self.assertRaises(DaemonNotRunningError) as raised:
            SyncClient(path).status()
        message = str(raised.exception)
        self.assertIn(path, message)
        self.assertIn("systemctl --user start lestash-syncd", message)
        self.assertIn("run `lestash-syncd` in a terminal", message)
        self.assertEqual(raised.exception.socket_path, path)

    def test_no_socket_file_means_not_running_with_how_to_start_it(self) -> None:
        self.assert_not_running(str(self.home.dir / "nothing/syncd.sock"))

    def test_a_socket_nobody_listens_on_means_not_running(self) -> None:
        path = str(self.home.dir / "stale.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()  # the file stays, nothing listens: ECONNREFUSED
        self.assert_not_running(path)

    def test_a_stopped_daemon_is_not_running(self) -> None:
        d = self.daemon("stopped")
        self.assertEqual(d.stop(), 0)
        self.assert_not_running(d.socket)


class SocketPath(fx.DaemonCase):
    """The socket is found where lestash-syncd puts it, without being told."""

    def env(self, **overrides: str):
        return mock.patch.dict(os.environ, self.home.env(**overrides), clear=True)

    def test_the_default_is_under_xdg_runtime_dir_and_the_client_finds_the_daemon(self) -> None:
        d = self.daemon("default", socket_path=None)
        expected = str(self.home.dir / "run/lestash/syncd.sock")
        with self.env():
            self.assertEqual(default_socket_path(), expected)
            fx.eventually(
                lambda: SyncClient().status().replica.name == "default",
                what="the daemon on the default socket",
            )
        self.assertEqual(d.stop(), 0)

    def test_without_xdg_runtime_dir_it_is_under_tmp_with_the_uid(self) -> None:
        with self.env():
            del os.environ["XDG_RUNTIME_DIR"]
            self.assertEqual(resolve_socket_path(), f"/tmp/lestash-{os.getuid()}/syncd.sock")
            os.environ["XDG_RUNTIME_DIR"] = ""  # empty counts as unset, as in the daemon
            self.assertEqual(default_socket_path(), f"/tmp/lestash-{os.getuid()}/syncd.sock")

    def test_control_socket_in_sync_toml_is_read_by_both(self) -> None:
        config = self.home.dir / "home/.config/lestash/sync.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text('[control]\nsocket = "~/sockets/mine.sock"\n')
        self.addCleanup(config.unlink)
        d = self.daemon("configured", socket_path=None)
        with self.env():
            self.assertEqual(resolve_socket_path(), str(self.home.dir / "home/sockets/mine.sock"))
            fx.eventually(
                lambda: SyncClient().status().replica.name == "configured",
                what="the daemon on sync.toml's socket",
            )
            # --socket wins over the file.
            self.assertEqual(resolve_socket_path("/elsewhere.sock"), "/elsewhere.sock")
        self.assertEqual(d.stop(), 0)

    def test_a_config_file_given_is_read_and_bad_ones_are_refused_clearly(self) -> None:
        config = self.home.dir / "other.toml"
        with self.env():
            config.write_text('[control]\nsocket = "/run/x/syncd.sock"\n')
            self.assertEqual(resolve_socket_path(config=config), "/run/x/syncd.sock")
            config.write_text('[log]\nlevel = "info"\n')
            self.assertEqual(resolve_socket_path(config=config), default_socket_path())
            for text, why in (
                ('[control]\nsocket = "relative.sock"\n', "is relative"),
                ('[control]\nsocket = "~bob/s.sock"\n', 'only "~/"'),
                ("[control]\nsocket = 3\n", "must be a string"),
                ("[control\n", "not valid TOML"),
                (f'[control]\nsocket = "/{"x" * 120}"\n', "shorter than 108"),
            ):
                config.write_text(text)
                with self.assertRaises(SocketConfigError) as raised:
                    resolve_socket_path(config=config)
                self.assertIn(why, str(raised.exception))
                self.assertIn(str(config), str(raised.exception))
            with self.assertRaises(SocketConfigError):
                resolve_socket_path(config=self.home.dir / "missing.toml")


class MalformedAnswers(unittest.TestCase):
    """A server that breaks the protocol: each break is MalformedAnswerError (or the
    closer kind), never a hang or a KeyError."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lestash-py-fake-"))
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, ignore_errors=True))

    def serve(self, answer) -> SyncClient:
        server = fx.ScriptedServer(self.dir, answer)
        self.addCleanup(server.close)
        return SyncClient(server.path, timeout=10)

    def assert_malformed(self, answer, *words: str) -> None:
        with self.assertRaises(MalformedAnswerError) as raised:
            self.serve(answer).status()
        for w in words:
            self.assertIn(w, str(raised.exception))

    def test_garbage_is_malformed(self) -> None:
        self.assert_malformed(lambda r: b"HTTP/1.1 400 Bad Request\r\n", "not JSON")
        self.assert_malformed(lambda r: b"\xff\xfe{}\n", "not JSON")
        self.assert_malformed(lambda r: b'[{"jsonrpc": "2.0"}]\n', "not JSON-RPC 2.0")
        self.assert_malformed(lambda r: b'{"id": 1, "result": {}}\n', "not JSON-RPC 2.0")

    def test_an_answer_to_another_request_is_malformed(self) -> None:
        self.assert_malformed(
            lambda r: fx.reply({"id": r["id"] + 7}, result={}), f"request id {8}", "id 1"
        )
        self.assert_malformed(lambda r: fx.reply({"id": str(r["id"])}, result={}), "'1'")

    def test_a_line_cut_short_is_malformed(self) -> None:
        self.assert_malformed(
            lambda r: fx.reply(r, result={"state": "idle"})[:20], "in the middle of an answer"
        )

    def test_results_of_the_wrong_shape_name_the_field(self) -> None:
        self.assert_malformed(
            lambda r: fx.reply(r, result={"state": "idle"}), 'status: "', "is missing"
        )
        self.assert_malformed(lambda r: fx.reply(r, result=[]), "status: expected an object")
        self.assert_malformed(lambda r: fx.reply(r), "without a result")
        self.assert_malformed(
            lambda r: fx.reply(r, error={"code": "x", "message": 1}), "without a code and message"
        )
        with self.assertRaises(MalformedAnswerError) as raised:
            self.serve(lambda r: fx.reply(r, result={"paused": "yes"})).sync_pause()
        self.assertIn("paused", str(raised.exception))
        good_hello = {"daemon": "x", "version": "1", "protocol": 1, "methods": ["status", 2]}
        with self.assertRaises(MalformedAnswerError) as raised:
            self.serve(lambda r: fx.reply(r, result=good_hello)).hello()
        self.assertIn("hello.methods[1]: expected a string", str(raised.exception))

    def test_a_closed_connection_without_an_answer_is_lost(self) -> None:
        with self.assertRaises(ConnectionLostError):
            self.serve(lambda r: None).status()

    def test_silence_is_no_answer_within_the_timeout(self) -> None:
        path = str(self.dir / "silent.sock")
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(path)
        silent.listen(1)  # accepts into the backlog, never reads, never answers
        self.addCleanup(silent.close)
        with self.assertRaises(NoAnswerError):
            SyncClient(path, timeout=0.3).status()

    def test_every_documented_code_has_its_exception(self) -> None:
        expected = {
            -32700: ParseError,
            -32600: InvalidRequestError,
            -32601: MethodNotFoundError,
            -32602: InvalidParamsError,
            -32603: InternalError,
            -32000: UnavailableError,
            -32001: BadQueryError,
            -32002: NoSuchItemError,
            -32003: TimedOutError,
            -32004: PausedError,
            -32005: RequestTooLargeError,
            -32006: PermissionDeniedError,
            -31999: RpcError,
        }
        for code, cls in expected.items():
            data = {"detail": "x"}
            client = self.serve(
                lambda r, code=code: fx.reply(
                    r, error={"code": code, "message": f"message {code}", "data": data}
                )
            )
            with self.assertRaises(cls) as raised:
                client.status()
            self.assertIs(type(raised.exception), cls)
            self.assertEqual(
                (raised.exception.code, raised.exception.message, raised.exception.data),
                (code, f"message {code}", data),
            )

    def test_errors_about_the_connection_come_with_a_null_id(self) -> None:
        # As the daemon sends them for another user, too many clients, a request too large.
        client = self.serve(
            lambda r: fx.reply(
                {"id": None},
                error={
                    "code": -32006,
                    "message": "permission denied: this daemon serves only uid 1000",
                },
            )
        )
        with self.assertRaises(PermissionDeniedError):
            client.status()

    def test_notifications_before_the_answer_are_passed_on(self) -> None:
        def answer(r):
            note = {
                "jsonrpc": "2.0",
                "method": "verify.progress",
                "params": {"table": "items", "done": 1, "total": 1},
            }
            report = {"matches": True, "repair": False, "pending_local_rows": 0, "tables": []}
            return (json.dumps(note) + "\n").encode() + fx.reply(r, result=report)

        seen: list[VerifyProgress] = []
        self.assertTrue(self.serve(answer).verify(on_progress=seen.append).matches)
        self.assertEqual(seen, [VerifyProgress("items", 1, 1)])


if __name__ == "__main__":
    fx.requirements_or_skip(postgres=True)
    unittest.main(verbosity=2)
