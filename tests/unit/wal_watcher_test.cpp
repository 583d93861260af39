// The WAL watcher on a real io_context and real SQLite files: writes by
// another connection wake it, other files do not, it survives SQLite
// deleting and recreating the -wal file, and it falls silent when destroyed.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/daemon/wal_watcher.hpp"
#include "temp_dir.hpp"

using lestash::WalWatcher;
using lestash::sqlite::Connection;
using namespace std::chrono_literals;

namespace {

constexpr int open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

// A WAL-mode database with one table, closed again (so no -wal file).
std::string create_wal_database(const lestash::test::TempDir& dir) {
    const auto path = dir.file("lestash.db");
    Connection db(path, open_flags);
    db.exec("PRAGMA journal_mode=WAL; CREATE TABLE notes(body TEXT)");
    return path;
}

void insert_note(Connection& db) {
    db.exec("INSERT INTO notes(body) VALUES ('hello')");
}

// Counts callbacks; the first one stops the loop so tests need not wait out
// the deadline, which is only there so a broken watcher fails instead of
// hanging.
struct Wakeups {
    asio::io_context io;
    int count = 0;
    std::function<void()> callback() {
        return [this] {
            ++count;
            io.stop();
        };
    }
    int run_until_woken() {
        io.restart();
        io.run_for(5s);
        return count;
    }
    // Handles only the events already queued, without waiting.
    int drain() {
        io.restart();
        io.poll();
        return count;
    }
};

}  // namespace

TEST_CASE("a write by another connection wakes the watcher", "[wal_watcher]") {
    lestash::test::TempDir dir;
    const auto path = create_wal_database(dir);
    Wakeups wakeups;
    WalWatcher watcher(wakeups.io, path, wakeups.callback());
    CHECK(wakeups.drain() == 0);

    Connection app(path, open_flags);
    insert_note(app);
    CHECK(wakeups.run_until_woken() >= 1);
}

TEST_CASE("writes to other files in the directory do not wake the watcher", "[wal_watcher]") {
    lestash::test::TempDir dir;
    const auto path = create_wal_database(dir);
    Wakeups wakeups;
    WalWatcher watcher(wakeups.io, path, wakeups.callback());

    std::ofstream(dir.file("notes.txt")) << "unrelated";
    std::ofstream(dir.file("lestash.db.bak")) << "unrelated";
    Connection other(dir.file("other.db"), open_flags);
    other.exec("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1)");
    // inotify queues events inside the write() call, so they are all
    // readable now; handling them must not call back.
    CHECK(wakeups.drain() == 0);

    Connection app(path, open_flags);
    insert_note(app);
    CHECK(wakeups.run_until_woken() == 1);
}

TEST_CASE("the watcher still hears writes after SQLite deletes and recreates the -wal file",
          "[wal_watcher]") {
    lestash::test::TempDir dir;
    const auto path = create_wal_database(dir);
    Wakeups wakeups;
    WalWatcher watcher(wakeups.io, path, wakeups.callback());
    {
        Connection first(path, open_flags);
        insert_note(first);
    }  // the last connection closes: checkpoint, -wal deleted
    REQUIRE_FALSE(std::filesystem::exists(path + "-wal"));
    wakeups.drain();
    wakeups.count = 0;

    // While this connection stays open its commit touches only the new
    // -wal file, not the database file.
    Connection second(path, open_flags);
    insert_note(second);
    REQUIRE(std::filesystem::exists(path + "-wal"));
    CHECK(wakeups.run_until_woken() >= 1);
}

TEST_CASE("a destroyed watcher calls back no more", "[wal_watcher]") {
    lestash::test::TempDir dir;
    const auto path = create_wal_database(dir);
    Wakeups wakeups;
    auto watcher = std::make_unique<WalWatcher>(wakeups.io, path, wakeups.callback());
    Connection app(path, open_flags);
    insert_note(app);
    watcher.reset();
    CHECK(wakeups.drain() == 0);
    CHECK(wakeups.io.stopped());  // nothing left to wait for: the descriptor is closed
}

TEST_CASE("a database in a missing directory cannot be watched, and the error says why",
          "[wal_watcher]") {
    lestash::test::TempDir dir;
    asio::io_context io;
    CHECK_THROWS_MATCHES(
        WalWatcher(io, dir.file("missing/lestash.db"), [] {}), lestash::LocalDatabaseError,
        Catch::Matchers::Message("cannot watch " + dir.file("missing") +
                                 " for writes (inotify): No such file or directory — the "
                                 "directory does not exist"));
}
