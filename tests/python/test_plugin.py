"""The Le Stash plugin's commands (`lestash sync …`) with Typer's CliRunner,
against real lestash-syncd daemons and a real private Postgres: output, --json,
and exit codes consistent with lestash-sync (1 error, 2 usage, 3 verify
differences, 4 now --wait timed out, 69 not running).

Run by CTest (python-plugin); by hand:
    LESTASH_SYNCD=build/release/lestash-syncd python3 -B tests/python/test_plugin.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
import unittest
from pathlib import Path

import sync_fixtures as fx


class PluginCase(fx.DaemonCase):
    @classmethod
    def setUpClass(cls) -> None:
        from typer.testing import CliRunner

        from lestash_sync_client.plugin import SyncPlugin

        super().setUpClass()
        cls.app = SyncPlugin().get_commands()
        try:  # click 8.1 mixes stderr into stdout unless told; 8.2 keeps them apart always
            cls.runner = CliRunner(mix_stderr=False)
        except TypeError:
            cls.runner = CliRunner()

    def lestash_sync(self, d: fx.Daemon | str, *args: str, code: int = 0):
        """`lestash sync ARGS --socket …` run in-process; checks the exit code."""
        socket = d if isinstance(d, str) else d.socket
        result = self.runner.invoke(
            self.app, [*args, "--socket", socket], env={"COLUMNS": "200", "NO_COLOR": "1"}
        )
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        self.assertEqual(
            result.exit_code,
            code,
            f"lestash sync {' '.join(args)}:\n{result.stdout}\n{result.stderr}",
        )
        return result

    def json_of(self, d: fx.Daemon, *args: str, code: int = 0):
        return json.loads(self.lestash_sync(d, *args, "--json", code=code).stdout)


class Commands(PluginCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.upstream = fx.postgres().new_upstream()
        cls.a = cls.daemon("a", cls.upstream)
        cls.b = cls.daemon("b", cls.upstream)

    def test_status_shows_state_replica_and_postgres(self) -> None:
        out = self.lestash_sync(self.a, "status").stdout
        self.assertIn("idle", out)
        self.assertIn("Replica: a (", out)
        self.assertIn(f"Database: {self.a.db}", out)
        self.assertIn(f"connected, schema {fx.newest_migration()}", out)
        status = self.json_of(self.a, "status")
        self.assertEqual((status["state"], status["replica"]["name"]), ("idle", "a"))

    def test_now_waits_until_caught_up(self) -> None:
        self.assertIn("Sync requested.", self.lestash_sync(self.a, "now").stdout)
        self.assertIn(
            "Caught up: idle, 0 local changes waiting",
            self.lestash_sync(self.a, "now", "--wait").stdout,
        )
        self.assertTrue(self.json_of(self.a, "now", "--wait", "--timeout", "30")["caught_up"])

    def test_search_show_and_history_of_an_item_written_on_another_replica(self) -> None:
        # Brackets as Rich markup would read them: shown as written, never interpreted.
        note = self.a.add_note("plug-1", "Okapi [field] notes", "the okapi is a [b]giraffid")
        self.a.tag(note, "animals")
        self.a.write(
            "UPDATE items SET content = 'the okapi is a [b]giraffid of the Congo' " "WHERE id = ?",
            (note,),
        )
        self.lestash_sync(self.a, "now", "--wait")
        fx.eventually(
            lambda: self.b.query("SELECT count(*) FROM item_history")[0][0] == 1
            and self.b.query("SELECT count(*) FROM item_tags")[0][0] == 1,
            what="B pulling A's note",
        )
        b_id = str(self.b.query("SELECT id FROM items WHERE source_id = 'plug-1'")[0][0])

        out = self.lestash_sync(self.b, "search", "okapi", "Congo").stdout
        self.assertIn("Okapi [field] notes", out)
        self.assertIn("1-1 of 1 matches", out)
        found = self.json_of(self.b, "search", "okapi", "--limit", "5")
        self.assertEqual(found["hits"][0]["title"], "Okapi [field] notes")
        self.assertIn("[okapi]", found["hits"][0]["snippet"].lower())  # the default markers
        self.assertIn(
            "No items found matching 'okapi'",
            self.lestash_sync(self.b, "search", "okapi", "--source", "bookmark").stdout,
        )

        out = self.lestash_sync(self.b, "show", b_id).stdout
        for line in (
            "Title: Okapi [field] notes",
            "Source: note",
            "Tags: animals",
            "History: 1 earlier versions",
            "the okapi is a [b]giraffid of the Congo",
        ):
            self.assertIn(line, out)
        uuid = self.json_of(self.b, "show", b_id)["uuid"]
        self.assertEqual(self.json_of(self.b, "show", uuid)["id"], int(b_id))

        out = self.lestash_sync(self.b, "history", uuid).stdout
        self.assertIn("the okapi is a [b]giraffid", out)
        self.assertIn("Okapi [field] notes", out)
        self.assertIn("Content before", out)
        history = self.json_of(self.b, "history", b_id, "--limit", "1")["history"]
        self.assertEqual(history[0]["content_old"], "the okapi is a [b]giraffid")

    def test_errors_are_red_on_stderr_with_exit_1_and_json_on_stdout(self) -> None:
        bad = self.lestash_sync(self.a, "search", "zebra AND (", code=1)
        self.assertIn("invalid search query", bad.stderr)
        self.assertEqual(bad.stdout, "")
        error = json.loads(
            self.lestash_sync(self.a, "search", "zebra AND (", "--json", code=1).stdout
        )["error"]
        self.assertEqual(error["code"], -32001)
        self.assertIn("no item 424242", self.lestash_sync(self.a, "show", "424242", code=1).stderr)
        self.assertIn(
            "No history for item",
            self.lestash_sync(self.a, "history", str(self.a.add_note("h0", "t", "c"))).stdout,
        )

    def test_usage_errors_exit_2(self) -> None:
        self.lestash_sync(self.a, "search", "okapi", "--limit", "0", code=2)
        self.lestash_sync(self.a, "now", "--timeout", "-1", code=2)
        self.lestash_sync(self.a, "conflicts", "resolve", "1", "--keep", "both", code=2)
        self.lestash_sync(self.a, "show", code=2)

    def test_pause_and_resume(self) -> None:
        try:
            self.assertIn("Paused", self.lestash_sync(self.a, "pause").stdout)
            fx.eventually(lambda: self.a.client().status().state == "paused", what="pausing")
            self.assertIn("paused", self.lestash_sync(self.a, "status").stdout)
            self.assertIn("resume", self.lestash_sync(self.a, "now", code=1).stderr)
        finally:
            self.assertEqual(self.json_of(self.a, "resume"), {"paused": False})
        fx.eventually(lambda: self.a.client().status().state == "idle", what="resuming")

    def test_log_shows_recent_events_and_metrics_the_counters(self) -> None:
        out = self.lestash_sync(self.a, "log").stdout
        self.assertIn("state starting -> idle", out)
        events = [
            json.loads(line)
            for line in self.lestash_sync(self.a, "log", "--json").stdout.splitlines()
        ]
        self.assertIn("state", [e["type"] for e in events])
        self.assertIn("lestash_sync_cycles_total", self.lestash_sync(self.a, "metrics").stdout)


class ConflictsAndVerify(PluginCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.upstream = fx.postgres().new_upstream()
        cls.a = cls.daemon("a", cls.upstream)

    def test_conflicts_are_listed_and_resolved(self) -> None:
        self.assertIn("No open conflicts.", self.lestash_sync(self.a, "conflicts").stdout)
        fx.make_conflict(self.home, self.a, self.upstream, "y")
        out = self.lestash_sync(self.a, "conflicts").stdout
        for text in (
            "items.title",
            "Title from A",
            "Title from C",
            "from c-y",
            "lestash sync conflicts resolve ID --keep winner|loser",
        ):
            self.assertIn(text, out)
        listed = self.json_of(self.a, "conflicts")["conflicts"]
        self.assertEqual(len(listed), 1)
        number = str(listed[0]["id"])
        out = self.lestash_sync(self.a, "conflicts", "resolve", number, "--keep", "loser").stdout
        self.assertIn(f"Conflict {number}: restored loser", out)
        fx.eventually(
            lambda: self.a.query("SELECT title FROM items WHERE source_id = 'y'")
            == [("Title from C",)],
            what="the loser restored",
        )
        self.assertIn("No open conflicts.", self.lestash_sync(self.a, "conflicts").stdout)
        self.assertIn("restored loser", self.lestash_sync(self.a, "conflicts", "--all").stdout)
        again = self.lestash_sync(
            self.a, "conflicts", "resolve", number, "--keep", "winner", code=1
        )
        self.assertIn("already resolved", again.stderr)

    def test_verify_exits_3_on_differences_until_repaired(self) -> None:
        self.a.add_note("z1", "Before", "body")
        self.lestash_sync(self.a, "now", "--wait")
        self.assertIn("same", self.lestash_sync(self.a, "verify").stdout)
        fx.tamper_upstream(fx.postgres(), self.upstream, "z1")
        out = self.lestash_sync(self.a, "verify", code=3).stdout
        self.assertIn("1 different", out)
        self.assertIn("lestash sync verify --repair", out)
        self.assertFalse(self.json_of(self.a, "verify", code=3)["matches"])
        self.assertIn("1 repaired", self.lestash_sync(self.a, "verify", "--repair").stdout)
        self.assertTrue(self.json_of(self.a, "verify")["matches"])


class Offline(PluginCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.d = cls.daemon("offline")

    def test_now_wait_without_postgres_exits_1_at_once_with_the_reason(self) -> None:
        # A long timeout: the answer must not wait for it (exit 4 would).
        r = self.lestash_sync(self.d, "now", "--wait", "--timeout", "600", code=1)
        self.assertIn("no Postgres configured", r.stderr)
        self.assertIn("not configured", self.lestash_sync(self.d, "status").stdout)

    def test_now_wait_timing_out_exits_4(self) -> None:
        # Postgres configured but not answering: waiting can only time out.
        d = self.daemon(
            "unreachable", "host=127.0.0.1 port=1 dbname=lestash", wait_for=("offline",)
        )
        r = self.lestash_sync(d, "now", "--wait", "--timeout", "0.2", code=4)
        self.assertIn("not caught up after 200 ms", r.stderr)

    def test_postgres_only_commands_exit_1_with_the_reason(self) -> None:
        for args in (
            ("conflicts",),
            ("verify",),
            ("conflicts", "resolve", "1", "--keep", "winner"),
        ):
            self.assertIn("no Postgres configured", self.lestash_sync(self.d, *args, code=1).stderr)


class NotRunning(PluginCase):
    COMMANDS = (
        ("status",),
        ("now",),
        ("pause",),
        ("resume",),
        ("search", "x"),
        ("show", "1"),
        ("history", "1"),
        ("conflicts",),
        ("conflicts", "resolve", "1", "--keep", "winner"),
        ("verify",),
        ("log",),
        ("metrics",),
    )

    def test_every_command_exits_69_saying_how_to_start_the_daemon(self) -> None:
        missing = str(self.home.dir / "none/syncd.sock")
        for args in self.COMMANDS:
            for extra in ((), ("--json",)):
                r = self.lestash_sync(missing, *args, *extra, code=69)
                self.assertIn("lestash-syncd is not running", r.stderr)
                self.assertIn("systemctl --user start lestash-syncd", r.stderr)
                self.assertEqual(r.stdout, "")


class Malformed(PluginCase):
    def test_a_garbled_answer_exits_1_with_a_clear_message(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="lestash-py-fake-"))
        self.addCleanup(shutil.rmtree, directory, True)
        server = fx.ScriptedServer(directory, lambda r: b"<html>\n")
        self.addCleanup(server.close)
        r = self.lestash_sync(server.path, "status", code=1)
        self.assertIn("not JSON", r.stderr)


class ThePluginObject(unittest.TestCase):
    def test_it_has_le_stash_s_plugin_shape(self) -> None:
        import typer

        from lestash_sync_client.plugin import SyncPlugin

        plugin = SyncPlugin()
        self.assertEqual(plugin.name, "sync")
        self.assertTrue(plugin.description)
        self.assertIsInstance(plugin.get_commands(), typer.Typer)
        self.assertEqual(list(plugin.sync({})), [])

    def test_the_client_modules_do_not_import_typer_or_rich(self) -> None:
        import subprocess
        import sys

        code = (
            "import sys, lestash_sync_client; from lestash_sync_client import client, paths, "
            "results, errors; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('typer', 'rich', 'click')))"
        )
        out = subprocess.run(
            [sys.executable, "-B", "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(fx.SOURCE_DIR / "src/python")},
            check=True,
        )
        self.assertEqual(out.stdout.strip(), "[]")


if __name__ == "__main__":
    fx.requirements_or_skip(postgres=True, typer=True)
    unittest.main(verbosity=2)
