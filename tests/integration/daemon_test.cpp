// lestash-syncd as a process: real daemons on real SQLite files, the
// throwaway Postgres, the sqlite3 shell and psql as the other writers.
// Deadlines here are generous liveness bounds, never performance claims.
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "lestash_sync/common/proc.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/control/control_client.hpp"
#include "lestash_sync/upstream/listener.hpp"
#include "skip.hpp"
#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

using namespace std::chrono_literals;

// A fresh read-only look at a database another process is writing.
std::int64_t count(const std::string& db_path, const std::string& sql) {
    sqlite::Connection db(db_path, SQLITE_OPEN_READONLY);
    db.exec("PRAGMA busy_timeout = 5000");
    return db.query_int(sql);
}

std::vector<std::string> daemon_args(const TempDir& dir, const std::string& name,
                                     const std::string& conninfo) {
    return {"--db",        dir.file(name + ".db"),
            "--postgres",  conninfo,
            "--socket",    dir.file(name + ".sock"),
            "--replica",   name,
            "--log-level", "debug"};
}

// The shell, as a user would: its own connection, the app's busy timeout.
void shell(const std::string& db_path, const std::string& sql) {
    const auto r = run_command("sqlite3 -cmd '.timeout 5000' '" + db_path + "' \"" + sql + "\"");
    INFO(r.output);
    REQUIRE(r.status == 0);
}

// Until the daemon's first catch-up is over (READY=1 time).
void require_started(DaemonProcess& d) {
    INFO(d.log());
    REQUIRE(eventually(
        [&] { return d.log().find("sync (start)") != std::string::npos || !d.running(); }));
    REQUIRE(d.running());
}

// Replicas a and b (fresh v11 databases) on a fresh upstream database, each
// with a running daemon that has finished its first cycle.
struct TwoDaemons {
    TempDir dir;
    UpstreamDatabase up = fresh_upstream();
    std::string a = create(dir.file("a.db")), b = create(dir.file("b.db"));
    DaemonProcess da{daemon_args(dir, "a", up.daemon_conninfo), dir.file("a.log")};
    DaemonProcess db{daemon_args(dir, "b", up.daemon_conninfo), dir.file("b.log")};
    TwoDaemons() {
        require_started(da);
        require_started(db);
    }
    static std::string create(const std::string& path) {
        create_lestash_db(path, 11);
        return path;
    }
};

ItemFields note(const std::string& source_id, const std::string& content) {
    ItemFields item;
    item.source_id = source_id;
    item.content = content;
    return item;
}

std::int64_t pg_count(pqxx::transaction_base& t, const std::string& sql) {
    return t.exec1(sql)[0].as<std::int64_t>();
}

// The daemon's status over its control socket, or state "unreachable".
nlohmann::json status_of(const std::string& socket) {
    try {
        ControlClient c(socket);
        return c.call("status", nlohmann::json::object(), {}, 10s);
    } catch (const std::exception& e) {
        return nlohmann::json{{"state", "unreachable"}, {"detail", e.what()}};
    }
}

}  // namespace

TEST_CASE("two daemons carry an app's write and a psql insert to every replica, unasked",
          "[daemon]") {
    TwoDaemons pair;
    const auto& up = pair.up;
    const auto &a = pair.a, &b = pair.b;
    auto &da = pair.da, &db = pair.db;

    shell(a,
          "INSERT INTO items (source_type, source_id, title, content) VALUES "
          "('note', 'shell-1', 'From the shell', 'written with the sqlite3 shell zebracorn')");
    INFO("a.log:\n" << da.log() << "\nb.log:\n" << db.log());
    REQUIRE(eventually(
        [&] { return count(b, "SELECT count(*) FROM items WHERE source_id = 'shell-1'") == 1; }));
    CHECK(count(b, "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'zebracorn'") == 1);

    shared_postgres().exec(
        "INSERT INTO lestash.items (id, source_type, source_id, title, content) VALUES "
        "(gen_random_uuid(), 'note', 'psql-1', 'From psql', 'typed into psql quagga')",
        up.name);
    REQUIRE(eventually([&] {
        return count(a, "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'quagga'") == 1 &&
               count(b, "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'quagga'") == 1;
    }));

    // An edit on B travels back to A.
    shell(b, "UPDATE items SET title = 'Edited on B' WHERE source_id = 'psql-1'");
    REQUIRE(eventually(
        [&] { return count(a, "SELECT count(*) FROM items WHERE title = 'Edited on B'") == 1; }));

    CHECK(da.stop(SIGTERM) == 0);
    CHECK(db.stop(SIGTERM) == 0);
    CHECK(da.log().find("stopped") != std::string::npos);
    for (const auto& path : {a, b}) {
        TestReplica r(path, up.daemon_conninfo);
        require_converged(r);
    }
}

// The change log is read below the oldest transaction running anywhere on
// the cluster, and a transaction open in another database (PowerSync's
// bucket storage) holds that horizon back. Regression: a change committed
// meanwhile was skipped by the pull its NOTIFY started, and nothing woke
// the daemon again until the five-minute safety pull.
TEST_CASE("a change committed while another database holds a transaction open arrives when it ends",
          "[daemon][pull]") {
    TwoDaemons pair;
    const auto& b = pair.b;
    auto& db = pair.db;
    pqxx::connection blocker(shared_postgres().conninfo("postgres"));
    pqxx::work held(blocker);
    held.exec("SELECT pg_current_xact_id()");  // takes an xid: the horizon stops here
    shared_postgres().exec(
        "INSERT INTO lestash.items (id, source_type, source_id, title, content) VALUES "
        "(gen_random_uuid(), 'note', 'held-1', 'Held back', 'written under an open transaction')",
        pair.up.name);
    std::this_thread::sleep_for(1500ms);  // B's NOTIFY-driven pull runs and reads nothing
    CHECK(count(b, "SELECT count(*) FROM items WHERE source_id = 'held-1'") == 0);
    held.commit();
    INFO("b.log:\n" << db.log());
    REQUIRE(eventually(
        [&] { return count(b, "SELECT count(*) FROM items WHERE source_id = 'held-1'") == 1; }));
}

// The app keeps its connection open between commits (a GUI or a long
// import), so the last file event of a commit can come before the commit is
// visible and no close event follows. Regression: such a write waited for
// the next write or the five-minute safety pull.
TEST_CASE("writes from an app connection that stays open propagate one by one", "[daemon]") {
    TwoDaemons pair;
    const auto& b = pair.b;
    auto &da = pair.da, &db = pair.db;
    AppWriter app(pair.a);
    for (int i = 0; i < 25; ++i) {
        const auto id = "open-" + std::to_string(i);
        app.insert_item(note(id, "written on a connection kept open"));
        INFO("write " << i << "\na.log:\n" << da.log() << "\nb.log:\n" << db.log());
        // Well below the safety pull (300 s): only the file events can bring it.
        REQUIRE(eventually(
            [&] {
                return count(b, "SELECT count(*) FROM items WHERE source_id = '" + id + "'") == 1;
            },
            30s));
    }
    CHECK(da.stop(SIGTERM) == 0);
    CHECK(db.stop(SIGTERM) == 0);
}

// Regression (found by the soak): a file size limit (ulimit -f, a quota)
// reached while the daemon wrote its WAL raised SIGXFSZ, whose default action
// killed the daemon (exit 153). Now SQLite reports the write error, the cycle
// fails, and the daemon retries with backoff until the limit is gone.
TEST_CASE("a file size limit reached during apply: the daemon stays, retries and catches up",
          "[daemon][quota]") {
    TwoDaemons pair;
    const auto &a = pair.a, &b = pair.b;
    auto &da = pair.da, &db = pair.db;
    const auto b_socket = pair.dir.file("b.sock");
    auto state_of_b = [&] {
        try {
            ControlClient c(b_socket);
            return c.call("status", nlohmann::json::object(), {}, 10s);
        } catch (const std::exception& e) {
            return nlohmann::json{{"state", "unreachable"}, {"detail", e.what()}};
        }
    };
    // No file of b's daemon may grow past 4 KiB: every WAL frame is past it.
    // (Its log is a file too, so the status is read over the socket.)
    rlimit limit{4096, RLIM_INFINITY};
    REQUIRE(::prlimit(db.pid(), RLIMIT_FSIZE, &limit, nullptr) == 0);

    AppWriter app_a(a);
    app_a.upsert_item(note("quota-1", "written on a while b is at its quota"));
    nlohmann::json seen;
    const bool failed = eventually([&] {
        seen = state_of_b();
        return seen["state"] == "error";
    });
    INFO("b's status: " << seen.dump() << "\nb.log:\n" << db.log());
    REQUIRE(failed);
    CHECK(db.running());
    // The app on b (no limit) keeps writing meanwhile and sees no error.
    AppWriter app_b(b);
    app_b.upsert_item(note("quota-2", "written on b while its daemon is at its quota"));

    limit.rlim_cur = RLIM_INFINITY;
    REQUIRE(::prlimit(db.pid(), RLIMIT_FSIZE, &limit, nullptr) == 0);
    REQUIRE(eventually([&] {
        return count(b, "SELECT count(*) FROM items WHERE source_id = 'quota-1'") == 1 &&
               count(a, "SELECT count(*) FROM items WHERE source_id = 'quota-2'") == 1;
    }));
    CHECK(state_of_b()["state"] == "idle");
    CHECK(da.stop(SIGTERM) == 0);
    CHECK(db.stop(SIGTERM) == 0);
    for (const auto& path : {a, b}) {
        TestReplica r(path, pair.up.daemon_conninfo);
        require_converged(r);  // verify, FTS5 integrity-check, outbox empty
    }
}

// A lock in Postgres held longer than the response timeout (someone's open
// transaction in psql, a long migration) makes the server silent, like a dead
// network: the guard drops the connection, the daemon retries with backoff
// instead of blocking (before the guard, a lock held past WatchdogSec got the
// daemon killed by systemd), and the write goes through once the lock is gone.
TEST_CASE("a Postgres lock held past the response timeout: the daemon drops, retries, then pushes",
          "[daemon][lock]") {
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    std::ofstream(dir.file("sync.toml"))
        << "[postgres]\nresponse_timeout_seconds = 2\n[sync]\nmax_backoff_seconds = 2\n";
    auto args = daemon_args(dir, "a", up.daemon_conninfo);
    args.insert(args.end(), {"--config", dir.file("sync.toml")});
    DaemonProcess da(args, dir.file("a.log"));
    require_started(da);

    pqxx::connection admin(up.admin_conninfo);
    pqxx::work lock(admin);
    lock.exec("LOCK TABLE lestash.items IN ACCESS EXCLUSIVE MODE");
    AppWriter app(dir.file("a.db"));
    app.upsert_item(note("lock-1", "written while Postgres has items locked"));
    INFO(da.log());
    REQUIRE(
        eventually([&] { return da.log().find("no answer from Postgres") != std::string::npos; }));
    CHECK(da.running());
    lock.abort();

    REQUIRE(eventually([&] {
        pqxx::connection c(up.admin_conninfo);
        pqxx::read_transaction t(c);
        return pg_count(t, "SELECT count(*) FROM lestash.items WHERE source_id = 'lock-1'") == 1;
    }));
    CHECK(da.stop(SIGTERM) == 0);
    TestReplica r(dir.file("a.db"), up.daemon_conninfo);
    require_converged(r);
}

// The same silence, met by the media step that follows a cycle (it reads
// what media files take in Postgres): the daemon goes offline there, outside
// a cycle, and must retry on its backoff schedule. Before, the first retry
// came at the next safety pull (set to an hour here), and the app's writes
// meanwhile started none.
TEST_CASE(
    "Postgres silent during the media step: the daemon retries with backoff, not at the "
    "safety pull",
    "[daemon][lock][media]") {
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    std::ofstream(dir.file("sync.toml"))
        << "[postgres]\nresponse_timeout_seconds = 2\n[sync]\nmax_backoff_seconds = 2\n"
           "safety_pull_seconds = 3600\n";
    auto args = daemon_args(dir, "a", up.daemon_conninfo);
    args.insert(args.end(), {"--config", dir.file("sync.toml")});
    DaemonProcess da(args, dir.file("a.log"));
    require_started(da);
    auto status = [&] { return status_of(dir.file("a.sock")); };
    auto idle_and_connected = [&] {
        const auto st = status();
        return st["state"] == "idle" && st["postgres"]["connected"] == true;
    };
    INFO(da.log());
    REQUIRE(eventually(idle_and_connected));

    pqxx::connection admin(up.admin_conninfo);
    pqxx::work lock(admin);
    lock.exec("LOCK TABLE lestash.media_blobs IN ACCESS EXCLUSIVE MODE");
    {
        // An asked-for sync reads the media figures afresh after its cycle.
        ControlClient c(dir.file("a.sock"));
        c.call("sync.now", {{"wait", false}}, {}, 10s);
    }
    const bool timed_out =
        eventually([&] { return da.log().find("no answer from Postgres") != std::string::npos; });
    INFO("a.log when the step was waited for:\n" << da.log());  // the INFO above is older
    REQUIRE(timed_out);
    REQUIRE(eventually([&] { return status()["state"] == "offline"; }));
    lock.abort();
    AppWriter app(dir.file("a.db"));
    app.upsert_item(note("media-lock-1", "written once Postgres answers again"));
    const bool back = eventually(idle_and_connected, 30s);
    const bool pushed = eventually(
        [&] {
            pqxx::connection c(up.admin_conninfo);
            pqxx::read_transaction t(c);
            return pg_count(t,
                            "SELECT count(*) FROM lestash.items WHERE source_id = "
                            "'media-lock-1'") == 1;
        },
        30s);
    INFO("status " << status().dump() << "\na.log:\n" << da.log());
    CHECK(back);
    CHECK(pushed);
    CHECK(da.stop(SIGTERM) == 0);
}

// A media step that fails every time while the cycles work (here Postgres
// refuses the read of what media files take: a revoked privilege) retries on
// a growing backoff. Each retry's good cycle used to reset the backoff, so
// the daemon retried, logged and reconnected about once a second for ever.
TEST_CASE("a media step that keeps failing retries on a growing backoff, then recovers",
          "[daemon][media][backoff]") {
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    std::ofstream(dir.file("sync.toml"))
        << "[sync]\nmax_backoff_seconds = 8\nsafety_pull_seconds = 3600\n";
    auto args = daemon_args(dir, "a", up.daemon_conninfo);
    args.insert(args.end(), {"--config", dir.file("sync.toml")});
    DaemonProcess da(args, dir.file("a.log"));
    require_started(da);
    auto state = [&] { return status_of(dir.file("a.sock"))["state"].get<std::string>(); };
    REQUIRE(eventually([&] { return state() == "idle"; }));
    pqxx::connection admin(up.admin_conninfo);
    {
        pqxx::work w(admin);
        w.exec("REVOKE SELECT ON lestash.media_blobs FROM lestash_sync");
        w.commit();
    }
    {
        // An asked-for sync reads the media figures afresh after its cycle.
        ControlClient c(dir.file("a.sock"));
        c.call("sync.now", {{"wait", false}}, {}, 10s);
    }
    REQUIRE(eventually([&] { return state() == "error"; }));
    auto media_errors = [&] {
        const std::string log = da.log();
        int n = 0;
        for (auto at = log.find("media files:"); at != std::string::npos;
             at = log.find("media files:", at + 1))
            ++n;
        return n;
    };
    const int first = media_errors();
    std::this_thread::sleep_for(20s);
    const int retries = media_errors() - first;
    INFO(retries << " media retries in 20 s\na.log:\n" << da.log());
    // A backoff of 0.5-1, 1-2, 2-4, 4-8, then 4-8 s gives 3 to 7 retries in
    // 20 s (fewer on a slow machine); a reset one, 20 or more.
    CHECK(retries >= 1);
    CHECK(retries <= 12);

    {
        pqxx::work w(admin);
        w.exec("GRANT SELECT ON lestash.media_blobs TO lestash_sync");
        w.commit();
    }
    AppWriter app(dir.file("a.db"));
    app.upsert_item(note("media-backoff-1", "written once the media step works again"));
    CHECK(eventually(
        [&] {
            pqxx::connection c(up.admin_conninfo);
            pqxx::read_transaction t(c);
            return pg_count(t,
                            "SELECT count(*) FROM lestash.items WHERE source_id = "
                            "'media-backoff-1'") == 1;
        },
        60s));
    CHECK(eventually([&] { return state() == "idle"; }, 30s));
    CHECK(da.stop(SIGTERM) == 0);
}

TEST_CASE("a second daemon on the same database refuses to start, naming the first", "[daemon]") {
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    DaemonProcess first(daemon_args(dir, "a", up.daemon_conninfo), dir.file("first.log"));
    require_started(first);
    DaemonProcess second(daemon_args(dir, "a", up.daemon_conninfo), dir.file("second.log"));
    CHECK(second.wait(60s) == 1);
    INFO(second.log());
    CHECK(second.log().find("another lestash-syncd (pid " + std::to_string(first.pid()) +
                            ") is already syncing") != std::string::npos);
    CHECK(first.running());
    CHECK(first.stop(SIGTERM) == 0);
}

TEST_CASE("Postgres stopped and restarted while the app writes: nothing lost, the daemon stays",
          "[daemon][offline]") {
    ThrowawayPostgres pg;  // its own server: this test stops it
    const auto up = fresh_upstream(pg);
    TempDir dir;
    const auto a = dir.file("a.db"), b = dir.file("b.db");
    create_lestash_db(a, 11);
    create_lestash_db(b, 11);
    DaemonProcess da(daemon_args(dir, "a", up.daemon_conninfo), dir.file("a.log"));
    require_started(da);

    AppWriter app(a);
    int written = 0;
    auto write_some = [&](int n) {
        for (int i = 0; i < n; ++i, ++written)
            app.upsert_item(note("offline-" + std::to_string(written),
                                 "note number " + std::to_string(written)));
    };
    write_some(20);
    REQUIRE(eventually([&] { return count(a, "SELECT count(*) FROM _lestash_sync_outbox") == 0; }));

    pg.stop("fast");
    write_some(30);
    std::this_thread::sleep_for(3s);  // let it notice, back off, retry at least once
    write_some(30);
    CHECK(da.running());
    pg.start();
    write_some(20);

    INFO(da.log());
    REQUIRE(eventually([&] { return count(a, "SELECT count(*) FROM _lestash_sync_outbox") == 0; },
                       120s));
    CHECK(da.running());
    // Logged once per change of state, not once per retry.
    // The outbox empties inside the cycle; its log line comes when it ends.
    CHECK(eventually([&] { return da.log().find("back in sync") != std::string::npos; }, 30s));
    const auto log = da.log();
    CHECK(log.find("offline") != std::string::npos);

    DaemonProcess db(daemon_args(dir, "b", up.daemon_conninfo), dir.file("b.log"));
    REQUIRE(eventually([&] { return count(b, "SELECT count(*) FROM items") == written; }, 120s));
    CHECK(da.stop(SIGTERM) == 0);
    CHECK(db.stop(SIGTERM) == 0);
    CHECK(count(b, "SELECT count(DISTINCT source_id) FROM items") == written);
    for (const auto& path : {a, b}) {
        TestReplica r(path, up.daemon_conninfo);
        require_converged(r);
    }
}

TEST_CASE("SIGTERM during a large push exits 0, keeps the outbox, and a restart finishes it",
          "[daemon][signals]") {
    TempDir dir;
    const auto up = fresh_upstream();
    const auto a = dir.file("a.db");
    create_lestash_db(a, 11);
    constexpr int items = 20000;
    {
        // Written before the daemon exists: the capture triggers come with
        // the first attach, so attach once (no Postgres) to install them.
        DaemonProcess capture_only({"--db", a, "--once"}, dir.file("attach.log"));
        REQUIRE(capture_only.wait() == 0);
        AppWriter app(a);
        std::vector<ItemFields> notes;
        for (int i = 0; i < items; ++i)
            notes.push_back(note("bulk-" + std::to_string(i), "bulk note " + std::to_string(i)));
        app.insert_items(notes);
    }
    REQUIRE(count(a, "SELECT count(*) FROM _lestash_sync_outbox") == items);

    DaemonProcess da(daemon_args(dir, "a", up.daemon_conninfo), dir.file("a.log"));
    REQUIRE(
        eventually([&] { return count(a, "SELECT count(*) FROM _lestash_sync_outbox") < items; }));
    CHECK(da.stop(SIGTERM) == 0);
    const auto left = count(a, "SELECT count(*) FROM _lestash_sync_outbox");
    INFO(da.log());
    CHECK(left > 0);  // stopped mid-push, not after it
    CHECK(da.log().find("stopping: finishing the batch in flight") != std::string::npos);
    pqxx::connection admin(up.admin_conninfo);
    pqxx::nontransaction q(admin);
    // Every change is either upstream or still waiting, never both, never neither.
    CHECK(pg_count(q, "SELECT count(*) FROM lestash.items") + left == items);

    DaemonProcess again({"--db", a, "--postgres", up.daemon_conninfo, "--once"},
                        dir.file("once.log"));
    CHECK(again.wait() == 0);
    CHECK(count(a, "SELECT count(*) FROM _lestash_sync_outbox") == 0);
    CHECK(pg_count(q, "SELECT count(*) FROM lestash.items") == items);
    CHECK(pg_count(q, "SELECT count(DISTINCT source_id) FROM lestash.items") == items);
    TestReplica r(a, up.daemon_conninfo);
    require_converged(r);
}

TEST_CASE("under systemd the daemon says READY, STATUS, WATCHDOG and STOPPING",
          "[daemon][systemd]") {
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    const auto socket_path = dir.file("notify");
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{0, 100000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<std::string> received;
    auto receive = [&] {
        char buf[4096];
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0)
            received.emplace_back(buf, static_cast<size_t>(n));
    };
    auto got = [&](const std::string& prefix) {
        receive();
        for (const auto& m : received)
            if (m.rfind(prefix, 0) == 0)
                return true;
        return false;
    };

    DaemonProcess da(daemon_args(dir, "a", up.daemon_conninfo), dir.file("a.log"),
                     {"NOTIFY_SOCKET=" + socket_path, "WATCHDOG_USEC=1000000"});
    INFO(da.log());
    REQUIRE(eventually([&] { return got("READY=1"); }));
    REQUIRE(eventually([&] { return got("STATUS=idle, 0 local changes waiting"); }));
    REQUIRE(eventually([&] { return got("WATCHDOG=1"); }));
    CHECK(da.stop(SIGTERM) == 0);
    CHECK(eventually([&] { return got("STOPPING=1"); }, 10s));
    ::close(fd);
}

TEST_CASE("an idle daemon sleeps: no thread wakes while nothing changes", "[daemon][idle]") {
    if (kThreadSanitizer) {
        // Its runtime's own thread (unnamed, like the daemon's) wakes every
        // 100 ms in every instrumented process: ~100 switches in 10 s.
        skip_test(
            "built with ThreadSanitizer, whose background thread in the daemon wakes ten times a "
            "second; the release and ASan builds count the daemon's own wake-ups");
        return;
    }
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    DaemonProcess da(daemon_args(dir, "a", up.daemon_conninfo), dir.file("a.log"));
    require_started(da);
    // Let start-up settle: the file events of the first cycle's own writes
    // are re-checked for up to ~3.6 s (see SyncWorker::run).
    std::this_thread::sleep_for(5s);
    const auto before = proc::context_switches(da.pid());
    std::this_thread::sleep_for(10s);
    const auto after = proc::context_switches(da.pid());
    INFO(da.log());
    // Idle means blocked in poll/epoll with no timer shorter than a minute:
    // a stray timer or busy loop would switch hundreds of times in 10 s.
    CHECK(after - before <= 2);
    CHECK(da.stop(SIGTERM) == 0);
}

TEST_CASE("SIGHUP re-reads the config, a bad edit keeps the old one running", "[daemon][config]") {
    TempDir dir;
    const auto up = fresh_upstream();
    create_lestash_db(dir.file("a.db"), 11);
    const auto config = dir.file("sync.toml");
    auto write_config = [&](const std::string& level) {
        std::ofstream(config) << "[database]\npath = \"" << dir.file("a.db")
                              << "\"\n[postgres]\nconninfo = \"" << up.daemon_conninfo
                              << "\"\n[log]\nlevel = \"" << level << "\"\n";
    };
    write_config("info");
    DaemonProcess da({"--config", config, "--socket", dir.file("a.sock")}, dir.file("a.log"));
    REQUIRE(eventually([&] { return da.log().find("attached to") != std::string::npos; }));
    INFO(da.log());

    write_config("loud");
    da.signal(SIGHUP);
    REQUIRE(eventually(
        [&] { return da.log().find("configuration not reloaded") != std::string::npos; }));
    CHECK(da.log().find(config + ":6") != std::string::npos);  // the file and line of the bad value
    CHECK(da.running());

    write_config("debug");
    da.signal(SIGHUP);
    REQUIRE(
        eventually([&] { return da.log().find("configuration reloaded") != std::string::npos; }));
    shared_postgres().exec(
        "INSERT INTO lestash.tags (id, name) VALUES (gen_random_uuid(), 'after-reload')", up.name);
    REQUIRE(eventually([&] {
        return count(dir.file("a.db"), "SELECT count(*) FROM tags WHERE name = 'after-reload'") ==
               1;
    }));
    // Debug level now: the cycle line of a pull that moved something is info,
    // the "nothing to do" ones are debug and only appear after the reload.
    CHECK(da.log().find("debug") != std::string::npos);
    CHECK(da.stop(SIGTERM) == 0);
}

// The keys SIGHUP applies beyond Postgres, sync and log, and the two it
// cannot (the database it attached, the tables it captures): those it names.
TEST_CASE("SIGHUP applies the replica name, the request timeout and a moved socket",
          "[daemon][config][reload]") {
    TempDir dir;
    const auto up = fresh_upstream();
    const auto db_path = dir.file("a.db");
    create_lestash_db(db_path, 11);
    const auto config = dir.file("sync.toml");
    struct Keys {
        std::string database, name, socket;
        int request_timeout = 30;
        std::string tables =
            R"(["items", "item_history", "tags", "item_tags", "sources", "sync_log"])";
    };
    auto write_config = [&](const Keys& k) {
        std::ofstream(config) << "[database]\npath = \"" << k.database
                              << "\"\n[postgres]\nconninfo = \"" << up.daemon_conninfo
                              << "\"\n[replica]\nname = \"" << k.name
                              << "\"\n[sync]\ntables = " << k.tables << "\n[control]\nsocket = \""
                              << k.socket << "\"\nrequest_timeout_seconds = " << k.request_timeout
                              << "\n[log]\nlevel = \"debug\"\n";
    };
    auto status_at = [](const std::string& socket) {
        ControlClient c(socket);
        return c.call("status");
    };
    auto reload = [&](DaemonProcess& d, const std::string& line) {
        const auto seen = d.log().size();
        d.signal(SIGHUP);
        return eventually([&] { return d.log().find(line, seen) != std::string::npos; });
    };
    Keys keys{db_path, "before", dir.file("one/syncd.sock")};
    write_config(keys);
    DaemonProcess da({"--config", config}, dir.file("a.log"));
    INFO(da.log());
    require_started(da);
    REQUIRE(status_at(keys.socket)["replica"]["name"] == "before");

    keys.name = "after";
    keys.socket = dir.file("two/syncd.sock");
    keys.request_timeout = 1;
    write_config(keys);
    REQUIRE(reload(da, "configuration reloaded\n"));
    CHECK_FALSE(std::filesystem::exists(dir.file("one/syncd.sock")));
    // The sync worker takes the new name between its cycles, a moment after
    // the main thread has logged the reload.
    CHECK(eventually([&] { return status_at(keys.socket)["replica"]["name"] == "after"; }, 10s));
    {
        // A client that sends nothing is cut off with the new timeout's words.
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, keys.socket.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        std::string answer;
        char buf[4096];
        pollfd p{fd, POLLIN, 0};
        while (::poll(&p, 1, 30000) > 0) {
            const auto n = ::read(fd, buf, sizeof buf);
            if (n <= 0)
                break;
            answer.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        CHECK(answer.find("no complete request within 1 s") != std::string::npos);
    }
    // The next push tells Postgres the new name.
    shell(db_path, "INSERT INTO tags (name) VALUES ('renamed')");
    CHECK(eventually([&] {
        pqxx::connection c(up.admin_conninfo);
        pqxx::read_transaction t(c);
        return pg_count(t, "SELECT count(*) FROM lestash.replicas WHERE name = 'after'") == 1;
    }));

    // The database and the tables stay as they are, and the log says so.
    keys.database = dir.file("b.db");
    keys.tables = R"(["items"])";
    write_config(keys);
    REQUIRE(reload(da,
                   "configuration reloaded; [database] path and [sync] tables changed and need a "
                   "restart: systemctl --user restart lestash-syncd"));
    CHECK(status_at(keys.socket)["database"] == db_path);
    CHECK_FALSE(std::filesystem::exists(keys.database));

    // A socket path that cannot be used: nothing changes, the old socket serves.
    std::ofstream(dir.file("two/not-a-socket")) << "a file\n";
    keys = Keys{db_path, "again", dir.file("two/not-a-socket")};
    write_config(keys);
    REQUIRE(reload(da, "configuration not reloaded, keeping the old one"));
    CHECK(da.log().find("is not a socket") != std::string::npos);
    CHECK(status_at(dir.file("two/syncd.sock"))["replica"]["name"] == "after");
    CHECK(da.stop(SIGTERM) == 0);
    CHECK_FALSE(std::filesystem::exists(dir.file("two/syncd.sock")));
}

TEST_CASE("a bad config file stops the daemon at start with the file, line and what is expected",
          "[daemon][config]") {
    TempDir dir;
    const auto config = dir.file("sync.toml");
    std::ofstream(config) << "[sync]\npush_batch = \"many\"\n";
    DaemonProcess da({"--config", config, "--db", dir.file("a.db")}, dir.file("a.log"));
    CHECK(da.wait(60s) == 2);
    INFO(da.log());
    CHECK(da.log().find(config + ":2") != std::string::npos);
    CHECK(da.log().find("whole number from 1 to 100000") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.file("a.db")));  // nothing touched
}

}  // namespace lestash::test

namespace lestash::test {

TEST_CASE("the change listener hears other writers but not the echo of its own pushes",
          "[daemon][listener]") {
    TempDir dir;
    const auto up = fresh_upstream();
    TestReplica a(dir.file("a.db"), up.daemon_conninfo);
    ChangeListener listener(up.daemon_conninfo);
    auto heard = [&] {
        pollfd p{listener.socket(), POLLIN, 0};
        ::poll(&p, 1, 2000);  // a notification arrives at commit, or not at all
        return listener.drain(a.replica().replica_id());
    };

    AppWriter(a.path()).upsert_item(note("own", "pushed by this replica"));
    a.sync();
    CHECK(heard() == 0);

    shared_postgres().exec("INSERT INTO lestash.tags (id, name) VALUES (gen_random_uuid(), 'psql')",
                           up.name);
    CHECK(heard() == 1);
}

}  // namespace lestash::test
