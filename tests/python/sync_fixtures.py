"""Real processes for the Python tests: a private Postgres, lestash-syncd
daemons, Le Stash databases written the way the app writes them, and a tiny
unix-socket server that answers what a test scripts.

Every process started here is stopped by pid: tests register stop() with
addCleanup / addClassCleanup / addModuleCleanup, which run when a test
fails too, and each child also gets PR_SET_PDEATHSIG, so it dies with the
test process if that is killed outright. Deadlines are liveness bounds only.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE.parent.parent
sys.path.insert(0, str(SOURCE_DIR / "src/python"))

from lestash_sync_client import LestashSyncError, SyncClient  # noqa: E402

SYNCD = os.environ.get("LESTASH_SYNCD", "")


def newest_migration() -> int:
    """The upstream schema version once every migration is applied: the newest file's number."""
    return max(int(f.name.split("_", 1)[0]) for f in (SOURCE_DIR / "migrations/postgres").glob("*.sql"))


def requirements_or_skip(postgres: bool = True, typer: bool = False) -> None:
    """Exits 77 (CTest's skip) with the reason when something a test needs is absent."""
    missing = []
    if not (SYNCD and os.access(SYNCD, os.X_OK)):
        missing.append("LESTASH_SYNCD (the lestash-syncd to test) is not set to a program")
    if postgres and not postgres_bin_dir():
        missing.append("no PostgreSQL server under /usr/lib/postgresql/*/bin (postgresql-15)")
    if typer:
        try:
            __import__("typer")
            __import__("rich")
        except ImportError as e:
            missing.append(
                f"{e.name} is not installed for {sys.executable} "
                "(apt-get install python3-typer python3-rich)"
            )
    if missing:
        print("skipped: " + "; ".join(missing))
        sys.exit(77)


def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "the condition") -> Any:
    """Polls `check` until it returns something true; fails after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except LestashSyncError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


def _die_with_parent(sig: int) -> Callable[[], None]:
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def set_death_signal() -> None:
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG, after any setuid (which clears it)
        if os.getppid() != parent:  # the parent died before the prctl
            os._exit(125)

    return set_death_signal


def _stop_process(process: subprocess.Popen, sig: int, grace: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def postgres_bin_dir() -> Path | None:
    for version in range(17, 12, -1):
        d = Path(f"/usr/lib/postgresql/{version}/bin")
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    return None


class PrivatePostgres:
    """A throwaway Postgres on a unix socket in a temp dir (no TCP), fsync off.

    As root, initdb and the server run as the `postgres` user (initdb refuses root).
    """

    PORT = 5432  # only names the socket file, in a directory of our own

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir, "no PostgreSQL server binaries"
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="lestash-py-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        os.chmod(self.dir, 0o700)
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **self._as,
        )
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-k",
                    str(self.dir),
                    "-p",
                    str(self.PORT),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=60",
                    "-c",
                    "shared_buffers=16MB",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(signal.SIGQUIT),
                **self._as,
            )
        end = time.monotonic() + 30
        while (
            subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", str(self.dir), "-p", str(self.PORT)]
            ).returncode
            != 0
        ):
            if self.process.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError("postgres did not start:\n" + self.log.read_text()[-2000:])
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process:
            _stop_process(self.process, signal.SIGQUIT)  # immediate: the data is thrown away
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, dbname: str) -> str:
        return f"host={self.dir} port={self.PORT} user=postgres dbname={dbname}"

    def sql(self, statements: str, dbname: str) -> str:
        """Runs SQL as the superuser (several statements: one transaction)."""
        r = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.dir),
                "-p",
                str(self.PORT),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                statements,
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def new_upstream(self) -> str:
        """A fresh database with the migrations applied; its conninfo."""
        name = f"lestash_{os.getpid()}_{next(_numbers)}"
        self.sql(f"CREATE DATABASE {name}", "postgres")
        conninfo = self.conninfo(name)
        r = subprocess.run(
            [SYNCD, "--postgres", conninfo, "migrate"], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise RuntimeError(f"lestash-syncd migrate failed: {r.stdout}{r.stderr}")
        return conninfo


_numbers = iter(range(1, 1_000_000))


class Home:
    """A temp directory standing in for the user's: HOME, XDG_* all inside it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lestash-py-"))
        for sub in ("home/.config", "run", "data"):
            (self.dir / sub).mkdir(parents=True)
        os.chmod(self.dir / "run", 0o700)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "LESTASH_"))}
        env.update(
            HOME=str(self.dir / "home"),
            XDG_CONFIG_HOME=str(self.dir / "home/.config"),
            XDG_RUNTIME_DIR=str(self.dir / "run"),
            XDG_DATA_HOME=str(self.dir / "data"),
        )
        env.update(overrides)
        return env

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """One lestash-syncd on home.dir/NAME.db, its socket at home.dir/NAME-run/syncd.sock."""

    def __init__(
        self,
        home: Home,
        name: str,
        conninfo: str | None = None,
        socket_path: str | None = "",
        config: Path | None = None,
        wait_for: tuple[str, ...] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.db = home.dir / f"{name}.db"
        self.log = home.dir / f"{name}.log"
        # "": a socket of its own; None: the daemon's default (XDG_RUNTIME_DIR, sync.toml).
        self.socket = str(home.dir / f"{name}-run/syncd.sock") if socket_path == "" else socket_path
        args = [SYNCD, "--db", str(self.db), "--replica", name, "--log-level", "debug"]
        if self.socket:
            args += ["--socket", self.socket]
        if conninfo:
            args += ["--postgres", conninfo]
        if config:
            args += ["--config", str(config)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env or home.env(),
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        states = wait_for or (("idle",) if conninfo else ("offline",))
        if self.socket:
            eventually(
                lambda: self.process.poll() is None and self.client().status().state in states,
                30,
                f"{name} reaching {'/'.join(states)} ({self.log_text()[-400:]})",
            )

    def client(self, **kwargs: Any) -> SyncClient:
        return SyncClient(self.socket, **kwargs)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int:
        """SIGTERM, and its exit status (0: a clean stop)."""
        return _stop_process(self.process, signal.SIGTERM)

    def stop_cleanly(self) -> None:
        """stop(), failing unless the daemon exits 0 (under ASan: no leak, no error)."""
        status = self.stop()
        if status != 0:
            raise AssertionError(
                f"lestash-syncd {self.name} exited {status}:\n" + self.log_text()[-3000:]
            )

    # --- writing as the Le Stash CLI does (its own connection, 5 s busy timeout)

    def write(self, sql: str, params: tuple = ()) -> int:
        with sqlite3.connect(self.db, timeout=5) as db:
            db.execute("PRAGMA foreign_keys = ON")
            return db.execute(sql, params).lastrowid or 0

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, params).fetchall()

    def add_note(self, source_id: str, title: str, content: str) -> int:
        self.write(
            "INSERT INTO items (source_type, source_id, title, content) VALUES ('note', ?, ?, ?) "
            "ON CONFLICT(source_type, source_id) DO UPDATE SET title = excluded.title, "
            "content = excluded.content",
            (source_id, title, content),
        )
        return self.query(
            "SELECT id FROM items WHERE source_type = 'note' AND source_id = ?", (source_id,)
        )[0][0]

    def tag(self, item_id: int, name: str) -> None:
        self.write("INSERT OR IGNORE INTO tags (name) VALUES (?)", (name,))
        self.write(
            "INSERT OR IGNORE INTO item_tags (item_id, tag_id) "
            "SELECT ?, id FROM tags WHERE name = ?",
            (item_id, name),
        )


_postgres: PrivatePostgres | None = None


def postgres() -> PrivatePostgres:
    """The test module's private Postgres: started on first use, stopped when the
    module's tests are done (a module cleanup), failed or not."""
    global _postgres
    if _postgres is None:
        _postgres = PrivatePostgres()
        unittest.addModuleCleanup(_stop_postgres)
    return _postgres


def _stop_postgres() -> None:
    global _postgres
    if _postgres is not None:
        _postgres.stop()
        _postgres = None


class DaemonCase(unittest.TestCase):
    """A temp home per test class, removed afterwards; its daemons stopped by pid
    (and required to exit 0) when the class is done."""

    home: Home

    @classmethod
    def setUpClass(cls) -> None:
        cls.home = Home()
        cls.addClassCleanup(cls.home.remove)

    @classmethod
    def daemon(cls, name: str, conninfo: str | None = None, **kwargs: Any) -> Daemon:
        d = Daemon(cls.home, name, conninfo, **kwargs)
        cls.addClassCleanup(d.stop_cleanly)
        return d


def sync_once(home: Home, db: Path, conninfo: str) -> str:
    """One `lestash-syncd --once` of another replica (no daemon): push, pull, exit."""
    r = subprocess.run(
        [SYNCD, "--db", str(db), "--postgres", conninfo, "--replica", db.stem, "--once"],
        capture_output=True,
        text=True,
        env=home.env(),
    )
    if r.returncode != 0:
        raise RuntimeError(f"lestash-syncd --once failed: {r.stdout}{r.stderr}")
    return r.stdout


def make_conflict(home: Home, a: Daemon, conninfo: str, source_id: str) -> None:
    """Daemon A and replica C edit the title of one item from the same start.

    A is paused while C's edit lands first; when A resumes, its later push
    wins and C's title is kept as the conflict's loser (column-level merge,
    migrations/postgres/002 stamp_revision).
    """
    c_db = home.dir / f"c-{source_id}.db"
    a.add_note(source_id, "Original", "body")
    a.client().sync_now(wait=True)
    sync_once(home, c_db, conninfo)
    a.client().sync_pause()
    eventually(lambda: a.client().status().state == "paused", 30, "pause")
    a.write("UPDATE items SET title = 'Title from A' WHERE source_id = ?", (source_id,))
    with sqlite3.connect(c_db, timeout=5) as db:
        db.execute("UPDATE items SET title = 'Title from C' WHERE source_id = ?", (source_id,))
    sync_once(home, c_db, conninfo)
    a.client().sync_resume()
    a.client().sync_now(wait=True)


def tamper_upstream(pg: PrivatePostgres, conninfo: str, source_id: str) -> None:
    """A change Postgres never announces: the row changes, the change log forgets it."""
    dbname = conninfo.rsplit("dbname=", 1)[1]
    pg.sql(
        f"UPDATE lestash.items SET title = 'silently changed' WHERE source_id = '{source_id}'; "
        "DELETE FROM lestash.change_log;",
        dbname,
    )


class ScriptedServer:
    """A real unix-socket server that answers each request line with what
    `answer(request)` returns (bytes, sent as they are), then closes when
    `answer` returns None. Stands in for a daemon gone wrong."""

    def __init__(self, directory: Path, answer: Callable[[dict[str, Any]], bytes | None]) -> None:
        self.path = str(directory / f"scripted-{next(_numbers)}.sock")
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                for line in reader:
                    request = json.loads(line)
                    self.requests.append(request)
                    reply = self.answer(request)
                    if reply is None:
                        break
                    conn.sendall(reply)
                    if not reply.endswith(b"\n"):
                        break  # a cut line: close right after it

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)


def reply(request: dict[str, Any], **members: Any) -> bytes:
    """A well-formed JSON-RPC response line for `request`, with `members`."""
    return (json.dumps({"jsonrpc": "2.0", "id": request["id"], **members}) + "\n").encode()
