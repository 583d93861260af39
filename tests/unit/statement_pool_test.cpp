// sqlite::Connection keeps prepared statements after use (StatementPool):
// a statement with the same text comes back without a new prepare, with
// nothing of its last use left on it, and never to two owners at once.
#include <catch2/catch.hpp>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "temp_dir.hpp"

using namespace lestash;
using namespace lestash::test;

namespace {

constexpr int kReadWrite = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

}  // namespace

TEST_CASE("a statement's text prepared once is reused, its bindings and row gone",
          "[sqlite][statement_pool]") {
    TempDir dir;
    sqlite::Connection db(dir.file("pool.db"), kReadWrite);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    db.exec("INSERT INTO t (v) VALUES ('one'), ('two')");
    const char* sql = "SELECT count(*), max(v) FROM t WHERE v = ?1 OR ?1 IS NULL";
    sqlite3_stmt* first = nullptr;
    {
        sqlite::Statement st(db, sql);
        first = st.handle();
        st.bind(1, "one");
        REQUIRE(st.step());
        CHECK(st.integer(0) == 1);
        // Left in the middle of its rows, holding a read: given back reset.
    }
    sqlite::Statement again(db, sql);
    CHECK(again.handle() == first);  // no new prepare
    REQUIRE(again.step());
    CHECK(again.integer(0) == 2);  // ?1 unbound: NULL, not 'one'
    // The read the first one held is over: another connection can write.
    sqlite::Connection other(dir.file("pool.db"), SQLITE_OPEN_READWRITE);
    again.reset();
    other.exec("INSERT INTO t (v) VALUES ('three')");
    CHECK(db.query_int("SELECT count(*) FROM t") == 3);
}

TEST_CASE("two statements of the same text alive at once get two handles",
          "[sqlite][statement_pool]") {
    TempDir dir;
    sqlite::Connection db(dir.file("pool.db"), kReadWrite);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)");
    db.exec("INSERT INTO t DEFAULT VALUES");
    db.exec("INSERT INTO t DEFAULT VALUES");
    const char* sql = "SELECT id FROM t ORDER BY id";
    sqlite::Statement outer(db, sql);
    REQUIRE(outer.step());
    CHECK(outer.integer(0) == 1);
    {
        sqlite::Statement inner(db, sql);
        CHECK(inner.handle() != outer.handle());
        REQUIRE(inner.step());
        CHECK(inner.integer(0) == 1);
    }
    REQUIRE(outer.step());  // undisturbed by the inner one
    CHECK(outer.integer(0) == 2);
}

TEST_CASE("a kept statement follows a schema change made by another connection",
          "[sqlite][statement_pool]") {
    TempDir dir;
    sqlite::Connection db(dir.file("pool.db"), kReadWrite);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    db.exec("INSERT INTO t (v) VALUES ('x')");
    CHECK(db.query_text("SELECT * FROM t") == "1");
    {
        sqlite::Connection app(dir.file("pool.db"), SQLITE_OPEN_READWRITE);
        app.exec("DROP TABLE t; CREATE TABLE t (v TEXT, id INTEGER PRIMARY KEY)");
        app.exec("INSERT INTO t (v) VALUES ('y')");
    }
    CHECK(db.query_text("SELECT * FROM t") == "y");  // prepared again for the new columns
    {
        sqlite::Connection app(dir.file("pool.db"), SQLITE_OPEN_READWRITE);
        app.exec("DROP TABLE t");
    }
    CHECK_THROWS_WITH(db.query_text("SELECT * FROM t"), Catch::Contains("no such table: t"));
}

TEST_CASE("exec runs one statement kept, several through sqlite3_exec, errors alike",
          "[sqlite][statement_pool]") {
    TempDir dir;
    sqlite::Connection db(dir.file("pool.db"), kReadWrite);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE);\n");
    db.exec("INSERT INTO t (v) VALUES ('a'); INSERT INTO t (v) VALUES ('b');");
    CHECK(db.query_int("SELECT count(*) FROM t") == 2);
    for (int i = 0; i < 3; ++i) db.exec("UPDATE t SET v = v || '+' WHERE id = 1");
    CHECK(db.query_text("SELECT v FROM t WHERE id = 1") == "a+++");
    CHECK_THROWS_WITH(db.exec("INSERT INTO t (v) VALUES ('b')"),
                      Catch::StartsWith("SQL failed on " + dir.file("pool.db")) &&
                          Catch::Contains("UNIQUE constraint failed"));
    CHECK_THROWS_WITH(db.exec("INSERT INTO t (v) VALUES ('c'); INSERT INTO t (v) VALUES ('b')"),
                      Catch::Contains("UNIQUE constraint failed"));
    CHECK(db.query_int("SELECT count(*) FROM t") == 3);  // 'c' went in before the failure
    db.exec("BEGIN IMMEDIATE");
    db.exec("INSERT INTO t (v) VALUES ('d')");
    db.exec("ROLLBACK");
    CHECK(db.query_int("SELECT count(*) FROM t WHERE v = 'd'") == 0);
    db.exec("  ");  // nothing to run

    // A Statement of a text with two statements prepares the first only;
    // that handle must not serve exec of the same text, which runs both.
    const char* two = "INSERT INTO t (v) VALUES ('e'); INSERT INTO t (v) VALUES ('f')";
    { sqlite::Statement first_only(db, two); }
    db.exec(two);
    CHECK(db.query_int("SELECT count(*) FROM t WHERE v IN ('e', 'f')") == 2);
}
