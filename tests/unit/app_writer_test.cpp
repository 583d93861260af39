// The tests' stand-in for the Le Stash CLI must open its transactions as
// Python's sqlite3 does, or the tests blame the daemon for a failure of the
// stand-in: "database is locked" at once, while another connection writes.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

#include "app_writer.hpp"
#include "temp_dir.hpp"

using namespace lestash;
using namespace lestash::test;

namespace {

ItemFields a_note(const std::string& id) {
    ItemFields f;
    f.source_id = id;
    f.title = "Note " + id;
    f.content = "text of " + id;
    return f;
}

// A v11 database in WAL mode, as the app leaves it.
std::string app_database(const TempDir& dir) {
    auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    { const AppWriter wal(path); }
    return path;
}

// Another connection (the daemon's) holds the write lock for `hold`, then
// commits; returns once it holds the lock.
std::future<void> hold_write_lock(const std::string& path, std::chrono::milliseconds hold) {
    auto holder = std::make_shared<sqlite::Connection>(path, SQLITE_OPEN_READWRITE);
    holder->exec("BEGIN IMMEDIATE");
    holder->exec("INSERT INTO tags (name) VALUES ('held ' || hex(randomblob(8)))");
    return std::async(std::launch::async, [holder, hold] {
        std::this_thread::sleep_for(hold);
        holder->exec("COMMIT");
    });
}

}  // namespace

TEST_CASE(
    "SQLite: a write prepared inside a deferred transaction fails at once on a newer "
    "snapshot",
    "[app_writer]") {
    // Why ImplicitTransaction exists. Preparing an INSERT into items connects
    // its FTS5 index, which reads the database; inside BEGIN that read keeps
    // its snapshot, and a commit by another connection before the write makes
    // the write fail with SQLITE_BUSY_SNAPSHOT, the busy timeout unused.
    TempDir dir;
    const auto path = app_database(dir);
    AppWriter app(path);
    sqlite::Connection other(path, SQLITE_OPEN_READWRITE);
    app.db().exec("BEGIN");
    sqlite::Statement st(app.db(), "INSERT INTO items (source_type, content) VALUES ('note', 'x')");
    CHECK(sqlite3_txn_state(app.db().handle(), "main") == SQLITE_TXN_READ);
    other.exec("INSERT INTO tags (name) VALUES ('meanwhile')");
    CHECK(sqlite3_step(st.handle()) == SQLITE_BUSY_SNAPSHOT);
    app.db().exec("ROLLBACK");
}

TEST_CASE(
    "an implicit transaction begins after the first write is prepared, so the write starts "
    "from no transaction",
    "[app_writer]") {
    TempDir dir;
    const auto path = app_database(dir);
    sqlite::Connection other(path, SQLITE_OPEN_READWRITE);
    {
        AppWriter app(path);
        ImplicitTransaction txn(app.db());
        sqlite::Statement st(app.db(),
                             "INSERT INTO items (source_type, content) VALUES ('note', 'x')");
        CHECK(sqlite3_txn_state(app.db().handle(), "main") == SQLITE_TXN_NONE);
        other.exec("INSERT INTO tags (name) VALUES ('meanwhile')");
        txn.begin();
        st.run();
        txn.commit();
    }
    CHECK(other.query_int("SELECT count(*) FROM items") == 1);

    SECTION("and a transaction dropped before its commit rolls back") {
        AppWriter app(path);
        {
            ImplicitTransaction txn(app.db());
            sqlite::Statement st(app.db(),
                                 "INSERT INTO items (source_type, content) VALUES ('note', 'y')");
            txn.begin();
            st.run();
            CHECK(app.db().query_int("SELECT count(*) FROM items") == 2);
        }
        CHECK(sqlite3_get_autocommit(app.db().handle()) == 1);
        CHECK(app.db().query_int("SELECT count(*) FROM items") == 1);
    }
}

TEST_CASE("the app's writes on a fresh connection wait while another connection writes",
          "[app_writer]") {
    // Each AppWriter is a new connection: its first write to items is where
    // the FTS5 index gets connected.
    TempDir dir;
    const auto path = app_database(dir);
    using std::chrono::milliseconds;
    std::int64_t item = 0;
    {
        auto done = hold_write_lock(path, milliseconds(300));
        AppWriter app(path);
        item = app.upsert_item(a_note("n1"));
        done.get();
    }
    {
        auto done = hold_write_lock(path, milliseconds(300));
        AppWriter app(path);
        app.insert_items({a_note("n2"), a_note("n3")});
        done.get();
    }
    {
        AppWriter app(path);
        const auto collection = app.create_collection("reading", std::nullopt);
        auto done = hold_write_lock(path, milliseconds(300));
        AppWriter fresh(path);
        fresh.add_to_collection(collection, item, std::string("first"));
        fresh.add_tag(item, "t");
        done.get();
    }
    sqlite::Connection check(path, SQLITE_OPEN_READONLY);
    CHECK(check.query_int("SELECT count(*) FROM items") == 3);
    CHECK(check.query_int("SELECT count(*) FROM collection_items") == 1);
    CHECK(check.query_int("SELECT count(*) FROM item_tags") == 1);
}
