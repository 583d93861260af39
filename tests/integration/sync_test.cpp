// Push and pull against a real Postgres: round trips, exactly-once, the
// change-log reader, column-level merge, history, deletes, bad input.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "app_writer.hpp"
#include "lestash_sync/common/error.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "skip.hpp"
#include "sync_fixture.hpp"

using namespace lestash;
using namespace lestash::test;

namespace {

ItemFields post(const std::string& id, const std::string& content) {
    ItemFields f;
    f.source_type = "bluesky";
    f.source_id = id;
    f.title = "Post " + id;
    f.content = content;
    f.author = "alice";
    f.metadata = R"({"likes":  3, "tags": ["a"]})";
    f.created_at = "2024-05-01 10:00:00.123456";
    return f;
}

std::int64_t count(pqxx::connection& c, const std::string& sql) {
    pqxx::nontransaction q(c);
    return q.exec1(sql)[0].as<std::int64_t>();
}

std::string one_text(sqlite::Connection& db, const std::string& sql) {
    return db.query_text(sql).value_or("<null>");
}

// A fresh upstream whose items refuse the title 'reject me' for good (a
// CHECK constraint, SQLSTATE 23514).
UpstreamDatabase upstream_refusing_reject_me() {
    auto up = fresh_upstream();
    shared_postgres().exec(
        "ALTER TABLE lestash.items ADD CONSTRAINT test_no_rejects CHECK (title "
        "IS DISTINCT FROM 'reject me')",
        up.name);
    return up;
}

}  // namespace

TEST_CASE_METHOD(TwoReplicas,
                 "rows with edge values written on one replica arrive byte-identical on another",
                 "[sync]") {
    // Edge values in every storage class the Le Stash columns can hold.
    a.replica().db().exec(R"sql(
        INSERT INTO items (source_type, source_id, url, title, content, author, created_at,
                           fetched_at, is_own_content, metadata) VALUES
          ('note', NULL, '', '', '', NULL, NULL, NULL, 0, NULL),
          ('bluesky', 'é', 'https://x', 'ℝ𝕖𝕒𝕝 😀 עברית', 'multi
line	tab', 'ü', '2024-01-02T03:04:05', '2024-01-02 03:04:05.123456', 1,
           '{"a":1,  "b" : [true, null]}'),
          ('edge', 'ints', NULL, NULL, 'c', NULL, 9223372036854775807, -9223372036854775808, 2,
           NULL),
          ('edge', 'reals', NULL, NULL, 'c', NULL, 1.5, -0.0, 0.1, 1e308),
          ('edge', 'blobs', NULL, NULL, CAST(x'61006200' AS TEXT), x'00ff10', x'', CAST(x'ff' AS TEXT),
           x'01', x'');
        INSERT INTO sync_log (source_type, started_at, status, items_added, items_updated,
                              error_message)
          VALUES ('bluesky', '2024-01-01 00:00:00', 'done', 'not a number', 4.25, '');
        INSERT INTO sources (source_type, config, last_sync, enabled)
          VALUES ('bluesky', '{"k":"v"}', NULL, 1), ('rss', NULL, '', 0);
    )sql");
    a.sync();
    b.sync();
    require_converged(a);
    require_converged(b);
    for (const char* table : {"items", "sync_log", "sources"}) {
        const std::string dump = std::string("SELECT group_concat(r, '\n') FROM (SELECT ") +
                                 "quote(source_type) || typeof(source_type) AS r FROM " + table +
                                 " ORDER BY source_type, rowid)";
        CHECK(one_text(a.replica().db(), dump) == one_text(b.replica().db(), dump));
    }
    // Every column of every item, with its storage class, in the same order.
    const std::string items =
        "SELECT group_concat(quote(source_type) || quote(source_id) || quote(url) || quote(title) "
        "|| hex(content) || typeof(content) || quote(author) || quote(created_at) || "
        "typeof(created_at) || quote(fetched_at) || typeof(fetched_at) || quote(is_own_content) || "
        "typeof(is_own_content) || quote(metadata) || typeof(metadata), '\n') FROM (SELECT * FROM "
        "items ORDER BY source_type, source_id)";
    CHECK(one_text(a.replica().db(), items) == one_text(b.replica().db(), items));
    CHECK(one_text(b.replica().db(),
                   "SELECT typeof(created_at) FROM items WHERE source_id = 'ints'") == "integer");
    CHECK(one_text(b.replica().db(),
                   "SELECT quote(fetched_at) FROM items WHERE source_id = 'ints'") ==
          "-9223372036854775808");
    CHECK(one_text(b.replica().db(), "SELECT hex(content) FROM items WHERE source_id = 'blobs'") ==
          "61006200");
    CHECK(one_text(b.replica().db(),
                   "SELECT typeof(content) FROM items WHERE source_id = 'blobs'") == "text");
    CHECK(one_text(b.replica().db(), "SELECT quote(metadata) FROM items WHERE source_id = 'é'") ==
          "'{\"a\":1,  \"b\" : [true, null]}'");
    CHECK(one_text(b.replica().db(),
                   "SELECT typeof(created_at) || quote(created_at) FROM items "
                   "WHERE source_id = 'reals'") == "real1.5");
    CHECK(one_text(b.replica().db(),
                   "SELECT quote(is_own_content) || quote(metadata) FROM items "
                   "WHERE source_id = 'reals'") == "0.1'1.0e+308'");
}

TEST_CASE("a push batch larger than one statement's parameter limit goes in several, whole",
          "[sync]") {
    // A statement carries at most 65535 parameters: 4681 new items (14 each)
    // or 5957 edits of 8 columns (11 each). 6000 rows in one push batch need
    // two statements of each kind.
    const auto up = fresh_upstream();
    TempDir dir;
    SyncOptions big;
    big.push_batch = 20000;
    TestReplica a(dir.file("a.db"), up.daemon_conninfo, 11, big);
    TestReplica b(dir.file("b.db"), up.daemon_conninfo);
    a.replica().db().exec(R"sql(
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
        INSERT INTO items (source_type, source_id, url, title, content, author, created_at,
                           is_own_content, metadata)
        SELECT 'bulk', 'b' || i, 'https://x/' || i, 'T' || i, 'content ' || i, 'me',
               '2024-01-01 00:00:00', i % 2, '{"i":' || i || '}' FROM n;
    )sql");
    a.sync();
    pqxx::connection admin(up.admin_conninfo);
    CHECK(count(admin, "SELECT count(*) FROM lestash.items WHERE source_type = 'bulk'") == 6000);
    a.replica().db().exec(
        "UPDATE items SET url = url || '/v2', title = title || ' v2', content = content || ' v2', "
        "author = 'you', created_at = '2025-01-01 00:00:00', fetched_at = '2025-01-02 00:00:00', "
        "is_own_content = 1 - is_own_content, metadata = '{}' WHERE source_type = 'bulk'");
    // Each edit also writes a history row (the app's trigger): 6000 more inserts.
    CHECK(a.engine().push_all().upserted == 12000);
    CHECK(count(admin, "SELECT count(*) FROM lestash.item_history") == 6000);
    CHECK(count(admin,
                "SELECT count(*) FROM lestash.items WHERE content LIKE '% v2' AND "
                "author = 'you' AND metadata = '{}'") == 6000);
    b.sync();
    require_converged(a);
    require_converged(b);
}

TEST_CASE("batches cut by size still push, pull and bootstrap every change", "[sync]") {
    // Every batch ends after its first row (a bootstrap's first page and a
    // pull's first slice hold 16): the cuts fall between an item and its
    // tag links, between a delete and the row written again under its key,
    // between edits of one row.
    const auto up = fresh_upstream();
    TempDir dir;
    int batches = 0;
    SyncOptions tiny;
    tiny.batch_bytes = 1;
    tiny.fault_hook = [&](std::string_view point) {
        batches += point == "push:send" || point == "pull:fetch";
    };
    TestReplica a(dir.file("a.db"), up.daemon_conninfo, 11, tiny);
    TestReplica b(dir.file("b.db"), up.daemon_conninfo, 11, tiny);
    b.sync();
    a.replica().db().exec(R"sql(
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150)
        INSERT INTO items (source_type, source_id, title, content)
        SELECT 'cut', 'c' || i, 'T' || i, 'content ' || i FROM n;
        INSERT INTO tags (name) VALUES ('red'), ('green'), ('blue');
        INSERT INTO item_tags (item_id, tag_id)
        SELECT items.id, tags.id FROM items, tags WHERE items.id % 3 = tags.id % 3;
    )sql");
    batches = 0;
    a.sync();
    CHECK(batches > 150);  // one row each
    batches = 0;
    b.sync();
    CHECK(batches >= 303 / 16);  // 303 rows, 16 a batch (uncut: all in one)
    require_converged(a);
    require_converged(b);

    a.replica().db().exec(R"sql(
        UPDATE items SET title = title || ' once' WHERE id % 2 = 0;
        DELETE FROM items WHERE id % 5 = 0;
        INSERT INTO items (source_type, source_id, title, content) VALUES ('cut', 'c5', 'back', 'again');
        UPDATE items SET content = content || ' twice' WHERE id % 2 = 0;
        DELETE FROM item_tags WHERE tag_id = (SELECT id FROM tags WHERE name = 'red');
        INSERT INTO item_tags (item_id, tag_id) SELECT id, (SELECT id FROM tags WHERE name = 'blue')
          FROM items WHERE id % 7 = 0 AND id NOT IN (SELECT item_id FROM item_tags
          WHERE tag_id = (SELECT id FROM tags WHERE name = 'blue'));
    )sql");
    b.replica().db().exec("UPDATE items SET author = 'bee' WHERE id % 3 = 0");
    sync_until_quiet({&a, &b});
    require_converged(a);
    require_converged(b);
    CHECK(one_text(b.replica().db(), "SELECT title FROM items WHERE source_id = 'c5'") == "back");

    // Row 2 comes second in the batch's order (its first entry) but starts
    // after its delete, later than row 3's edit: the first batch (row 1)
    // must leave row 3's edit queued. (url: edits that write no history.)
    a.replica().db().exec(R"sql(
        UPDATE items SET url = 'one' WHERE id = 1;
        UPDATE items SET url = 'two' WHERE id = 2;
        DELETE FROM items WHERE id = 2;
        UPDATE items SET url = 'three' WHERE id = 3;
        INSERT INTO items (id, source_type, source_id, url, content)
          VALUES (2, 'cut', 'c2 again', 'two again', 'x');
    )sql");
    sync_until_quiet({&a, &b});
    require_converged(a);
    require_converged(b);
    CHECK(one_text(b.replica().db(),
                   "SELECT group_concat(url, ',') FROM (SELECT url FROM items WHERE "
                   "source_id IN ('c1', 'c2', 'c2 again', 'c3') ORDER BY source_id)") ==
          "one,two again,three");

    // A new tag takes over the name, and so the identity, of one renamed and
    // then deleted: the delete must not remove the new tag upstream, though a
    // batch ends between them (the item comes before the delete).
    a.replica().db().exec(R"sql(
        INSERT INTO tags (name) VALUES ('bar');
        UPDATE tags SET name = 'crimson' WHERE name = 'red';
        UPDATE tags SET name = 'red' WHERE name = 'bar';
        INSERT INTO items (source_type, source_id, content) VALUES ('cut', 'between', 'x');
        DELETE FROM tags WHERE name = 'crimson';
    )sql");
    sync_until_quiet({&a, &b});
    require_converged(a);
    require_converged(b);
    CHECK(one_text(b.replica().db(),
                   "SELECT group_concat(name, ',') FROM (SELECT name FROM tags "
                   "ORDER BY name)") == "blue,green,red");

    // The same post deleted and imported again, a batch end between the two
    // rows' entries: Postgres must see one upsert, so the tag B gave the
    // post meanwhile (A has not seen it) stays.
    b.replica().db().exec(
        "INSERT INTO item_tags (item_id, tag_id) SELECT i.id, t.id FROM items i, tags t WHERE "
        "i.source_id = 'c11' AND t.name = 'blue'");
    b.engine().push_all();
    a.replica().db().exec(R"sql(
        DELETE FROM items WHERE source_id = 'c11';
        INSERT INTO items (source_type, source_id, content) VALUES ('cut', 'filler', 'x');
        INSERT INTO items (source_type, source_id, title, content) VALUES ('cut', 'c11', 'again', 'y');
    )sql");
    sync_until_quiet({&a, &b});
    require_converged(a);
    require_converged(b);
    const std::string blue_c11 =
        "SELECT count(*) FROM item_tags JOIN items ON items.id = item_id JOIN tags ON tags.id = "
        "tag_id WHERE source_id = 'c11' AND name = 'blue'";
    CHECK(one_text(a.replica().db(), blue_c11) == "1");
    CHECK(one_text(b.replica().db(), blue_c11) == "1");

    TestReplica c(dir.file("c.db"), up.daemon_conninfo, 11, tiny);
    c.sync();
    require_converged(c);
    const std::string all =
        "SELECT count(*) || '/' || total(length(title) + length(content)) || '/' || "
        "(SELECT count(*) FROM item_tags) FROM items";
    CHECK(one_text(c.replica().db(), all) == one_text(a.replica().db(), all));
}

TEST_CASE_METHOD(OneReplica,
                 "long values a daemon writes are compressed with lz4 where Postgres has it",
                 "[sync]") {
    pqxx::connection admin(up.admin_conninfo);
    if (count(admin,
              "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' "
              "AND 'lz4' = ANY(enumvals)") == 0)
        return skip_test("this Postgres is built without lz4");
    a.replica().db().exec(
        "INSERT INTO items (source_type, source_id, content) VALUES ('pdf', 'long', "
        "(WITH RECURSIVE n(i, s) AS (SELECT 1, 'page ' UNION ALL SELECT i + 1, s || i || ' words "
        "of an enriched pdf ' FROM n WHERE i < 4000) SELECT s FROM n WHERE i = 4000))");
    a.sync();
    CHECK(count(admin,
                "SELECT count(*) FROM lestash.items WHERE source_id = 'long' AND "
                "pg_column_compression(content) = 'lz4'") == 1);
    require_converged(a);
}

TEST_CASE("a retried push whose acknowledgement was lost is not applied twice",
          "[sync][exactly-once]") {
    const auto up = fresh_upstream();
    TempDir dir;
    bool crash = true;
    SyncOptions opts;
    opts.fault_hook = [&](std::string_view point) {
        if (point == "push:after-commit" && crash) {
            crash = false;
            // The connection dies right after COMMIT: the outbox delete never happens.
            shared_postgres().exec(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "usename = 'lestash_daemon_test' AND datname = '" +
                up.name + "'");
            throw std::runtime_error("simulated crash after commit");
        }
    };
    TestReplica a(dir.file("a.db"), up.daemon_conninfo, 11, opts);
    AppWriter app(a.path());
    ItemFields note;
    note.content = "a note without a natural key";
    app.insert_item(note);
    app.insert_item(note);
    CHECK_THROWS_WITH(a.engine().push_batch(), Catch::Contains("simulated crash"));
    CHECK(a.replica().outbox().depth() == 2);

    // The daemon restarts: a new connection, the same outbox.
    TestReplica again(a.path(), up.daemon_conninfo);
    const auto stats = again.engine().push_batch();
    CHECK(stats.already_applied == 1);
    CHECK(again.replica().outbox().depth() == 0);
    pqxx::connection pg(up.admin_conninfo);
    CHECK(count(pg, "SELECT count(*) FROM lestash.items") == 2);
    CHECK(count(pg, "SELECT count(*) FROM lestash.change_log") == 2);
    require_converged(again);
}

TEST_CASE_METHOD(OneReplica,
                 "a crash between applying a pull and saving the cursor duplicates nothing",
                 "[sync][exactly-once]") {
    bool crash = false;
    SyncOptions opts;
    opts.fault_hook = [&](std::string_view point) {
        if (point == "pull:before-cursor-save" && crash) {
            crash = false;
            throw std::runtime_error("simulated crash before cursor save");
        }
    };
    TestReplica b(dir.file("b.db"), up.daemon_conninfo, 11, opts);
    b.sync();  // bootstrap: the cursor exists from here on
    crash = true;
    AppWriter app(a.path());
    for (int i = 0; i < 5; ++i) {
        ItemFields note;
        note.content = "note " + std::to_string(i);
        app.insert_item(note);
    }
    a.sync();
    CHECK_THROWS_WITH(b.engine().pull_batch(), Catch::Contains("simulated crash"));
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items") == 0);
    b.sync();
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items") == 5);
    b.sync();
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items") == 5);
    require_converged(b);
}

TEST_CASE("a change whose transaction commits after a later-numbered one is not skipped",
          "[sync][change-log]") {
    const auto up = fresh_upstream();
    TempDir dir;
    TestReplica b(dir.file("b.db"), up.daemon_conninfo);
    b.sync();
    pqxx::connection slow_conn(up.admin_conninfo), fast_conn(up.admin_conninfo);
    pqxx::work slow(slow_conn);
    slow.exec(
        "INSERT INTO lestash.items (id, source_type, content) VALUES "
        "('00000000-0000-4000-8000-000000000001', 'psql', 'slow writer')");
    {
        pqxx::work fast(fast_conn);
        fast.exec(
            "INSERT INTO lestash.items (id, source_type, content) VALUES "
            "('00000000-0000-4000-8000-000000000002', 'psql', 'fast writer')");
        fast.commit();
    }
    // The fast transaction's change-log entry is numbered after the slow
    // one's, and the slow one is still open: nothing below it may be read yet.
    b.sync();
    const auto before = b.replica().db().query_int("SELECT count(*) FROM items");
    slow.commit();
    b.sync();
    CHECK(before == 0);
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items") == 2);
    require_converged(b);
}

TEST_CASE_METHOD(
    TwoReplicas,
    "edits of different columns on two replicas both survive, the same column records a "
    "conflict",
    "[sync][conflict]") {
    AppWriter app_a(a.path()), app_b(b.path());
    const auto id_a = app_a.upsert_item(post("p1", "original"));
    sync_until_quiet({&a, &b});
    const auto id_b = b.replica().db().query_int("SELECT id FROM items WHERE source_id = 'p1'");

    SECTION("different columns") {
        app_a.db().exec("UPDATE items SET title = 'title from A' WHERE id = " +
                        std::to_string(id_a));
        app_b.db().exec("UPDATE items SET author = 'author from B' WHERE id = " +
                        std::to_string(id_b));
        // B pulls before pushing: A's change waits for B's pending edit.
        b.engine().pull_all();
        a.sync();
        b.sync();
        sync_until_quiet({&a, &b});
        for (auto* r : {&a, &b}) {
            CHECK(one_text(r->replica().db(), "SELECT title || '/' || author FROM items") ==
                  "title from A/author from B");
            require_converged(*r);
        }
        pqxx::connection pg(up.admin_conninfo);
        CHECK(count(pg, "SELECT count(*) FROM lestash.conflicts") == 0);
    }
    SECTION("the same column") {
        app_a.db().exec("UPDATE items SET title = 'A wins?' WHERE id = " + std::to_string(id_a));
        app_b.db().exec("UPDATE items SET title = 'B arrives later' WHERE id = " +
                        std::to_string(id_b));
        a.sync();
        b.sync();
        sync_until_quiet({&a, &b});
        for (auto* r : {&a, &b}) {
            CHECK(one_text(r->replica().db(), "SELECT title FROM items") == "B arrives later");
            require_converged(*r);
        }
        pqxx::connection pg(up.admin_conninfo);
        pqxx::nontransaction q(pg);
        const auto c = q.exec(
            "SELECT column_name, winner_value #>> '{}', loser_value #>> '{}', "
            "winner_origin::text, loser_origin::text FROM lestash.conflicts");
        REQUIRE(c.size() == 1);
        CHECK(c[0][0].as<std::string>() == "title");
        CHECK(c[0][1].as<std::string>() == "B arrives later");
        CHECK(c[0][2].as<std::string>() == "A wins?");
        CHECK(c[0][3].as<std::string>() == b.replica().replica_id());
        CHECK(c[0][4].as<std::string>() == a.replica().replica_id());
    }
}

TEST_CASE_METHOD(TwoReplicas,
                 "a pending local edit is not overwritten by a pull, and only that row waits",
                 "[sync][conflict]") {
    AppWriter app_a(a.path()), app_b(b.path());
    app_a.upsert_item(post("p1", "one"));
    app_a.upsert_item(post("p2", "two"));
    sync_until_quiet({&a, &b});
    app_a.db().exec("UPDATE items SET content = 'remote edit' WHERE source_id IN ('p1', 'p2')");
    a.sync();
    app_b.db().exec("UPDATE items SET content = 'local edit' WHERE source_id = 'p1'");
    const auto pulled = b.engine().pull_all();
    CHECK(pulled.deferred == 1);
    CHECK(one_text(b.replica().db(), "SELECT content FROM items WHERE source_id = 'p1'") ==
          "local edit");
    CHECK(one_text(b.replica().db(), "SELECT content FROM items WHERE source_id = 'p2'") ==
          "remote edit");
    sync_until_quiet({&a, &b});
    CHECK(one_text(a.replica().db(), "SELECT content FROM items WHERE source_id = 'p1'") ==
          "local edit");
    require_converged(a);
    require_converged(b);
}

TEST_CASE_METHOD(TwoReplicas,
                 "history stays one history: the app's trigger does not duplicate remote updates",
                 "[sync][history]") {
    AppWriter app_a(a.path());
    app_a.upsert_item(post("p1", "v1"));
    app_a.upsert_item(post("p1", "v2"));
    app_a.upsert_item(post("p1", "v3"));
    sync_until_quiet({&a, &b});
    for (auto* r : {&a, &b}) {
        CHECK(r->replica().db().query_int("SELECT count(*) FROM item_history") == 2);
        CHECK(one_text(r->replica().db(),
                       "SELECT group_concat(content_old || ':' || change_reason, ',') FROM "
                       "(SELECT * FROM item_history ORDER BY id)") == "v1:sync,v2:sync");
        require_converged(*r);
    }
}

TEST_CASE_METHOD(TwoReplicas, "deleting an item cascades to its history and tags everywhere",
                 "[sync][delete]") {
    AppWriter app_a(a.path());
    const auto id = app_a.upsert_item(post("p1", "v1"));
    app_a.upsert_item(post("p1", "v2"));
    app_a.add_tag(id, "keep");
    app_a.upsert_item(post("p2", "other"));
    sync_until_quiet({&a, &b});
    CHECK(b.replica().db().query_int("SELECT count(*) FROM item_tags") == 1);
    AppWriter app_b(b.path());
    app_b.delete_item(b.replica().db().query_int("SELECT id FROM items WHERE source_id = 'p1'"));
    sync_until_quiet({&a, &b});
    for (auto* r : {&a, &b}) {
        CHECK(r->replica().db().query_int("SELECT count(*) FROM items") == 1);
        CHECK(r->replica().db().query_int("SELECT count(*) FROM item_history") == 0);
        CHECK(r->replica().db().query_int("SELECT count(*) FROM item_tags") == 0);
        CHECK(r->replica().db().query_int("SELECT count(*) FROM tags") == 1);
        require_converged(*r);
    }
}

TEST_CASE_METHOD(TwoReplicas, "the same post imported on two replicas becomes one row",
                 "[sync][identity]") {
    AppWriter(a.path()).upsert_item(post("same", "imported on A"));
    AppWriter(b.path()).upsert_item(post("same", "imported on B"));
    AppWriter(a.path()).add_tag(1, "shared-tag");
    AppWriter(b.path()).add_tag(1, "shared-tag");
    sync_until_quiet({&a, &b});
    pqxx::connection pg(up.admin_conninfo);
    CHECK(count(pg, "SELECT count(*) FROM lestash.items") == 1);
    CHECK(count(pg, "SELECT count(*) FROM lestash.tags") == 1);
    CHECK(count(pg, "SELECT count(*) FROM lestash.item_tags") == 1);
    // The later arrival's content wins; the other is kept as a conflict.
    CHECK(count(pg, "SELECT count(*) FROM lestash.conflicts WHERE column_name = 'content'") == 1);
    for (auto* r : {&a, &b}) {
        CHECK(r->replica().db().query_int("SELECT count(*) FROM items") == 1);
        require_converged(*r);
    }
}

TEST_CASE("a change Postgres refuses for good becomes a dead letter and the rest flows",
          "[sync][dead-letter]") {
    const auto up = upstream_refusing_reject_me();
    TempDir dir;
    TestReplica a(dir.file("a.db"), up.daemon_conninfo);
    AppWriter app(a.path());
    app.upsert_item(post("ok1", "fine"));
    auto bad = post("bad", "refused");
    bad.title = "reject me";
    app.upsert_item(bad);
    app.upsert_item(post("ok2", "fine too"));
    const auto stats = a.engine().push_all();
    CHECK(stats.dead_lettered == 1);
    CHECK(a.replica().outbox().depth() == 0);
    pqxx::connection pg(up.admin_conninfo);
    CHECK(count(pg, "SELECT count(*) FROM lestash.items") == 2);
    CHECK_THAT(one_text(a.replica().db(), "SELECT error FROM _lestash_sync_dead_letters"),
               Catch::Contains("test_no_rejects"));
    CHECK(one_text(a.replica().db(), "SELECT sqlstate FROM _lestash_sync_dead_letters") == "23514");

    // verify --repair finds it missing upstream, queues it, is refused
    // again, fetches nothing: the row is the user's and stays.
    a.engine().verify(true);
    CHECK(a.replica().db().query_int("SELECT count(*) FROM items WHERE source_id = 'bad'") == 1);
    CHECK(a.replica().db().query_int("SELECT count(*) FROM items") == 3);
}

TEST_CASE_METHOD(OneReplica, "rows written directly in Postgres reach every replica",
                 "[sync][psql]") {
    a.sync();
    shared_postgres().exec(
        "INSERT INTO lestash.items (id, source_type, source_id, title, content) VALUES "
        "(gen_random_uuid(), 'web', 'w1', 'From the web', 'typed in a browser');"
        "INSERT INTO lestash.tags (id, name) VALUES (gen_random_uuid(), 'web-tag');"
        "INSERT INTO lestash.item_tags (id, item_id, tag_id) SELECT gen_random_uuid(), i.id, t.id "
        "FROM lestash.items i, lestash.tags t",
        up.name);
    a.sync();
    CHECK(one_text(a.replica().db(), "SELECT title FROM items") == "From the web");
    CHECK(a.replica().db().query_int("SELECT count(*) FROM item_tags") == 1);
    CHECK(a.replica().db().query_int(
              "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'browser'") == 1);
    shared_postgres().exec("UPDATE lestash.items SET title = 'Edited in psql'", up.name);
    a.sync();
    CHECK(one_text(a.replica().db(), "SELECT title FROM items") == "Edited in psql");
    // The app's history trigger fired for the remote update; no replica
    // pushed that history row, so none stays.
    CHECK(a.replica().db().query_int("SELECT count(*) FROM item_history") == 0);
    require_converged(a);
}

TEST_CASE("bad upstream input gets a clear error and loses nothing from the outbox",
          "[sync][errors]") {
    auto& pg = shared_postgres();
    TempDir dir;
    const auto path = dir.file("a.db");
    create_lestash_db(path, 11);
    {
        AppWriter app(path);
        Replica attach({path});
        app.upsert_item(post("p1", "kept"));
    }
    const auto depth = [&] { return Replica({path}).outbox().depth(); };
    REQUIRE(depth() == 1);

    SECTION("unreachable Postgres") {
        // A port held but not listening: connecting is refused, whatever
        // other tests run alongside.
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        const int closed_port = ntohs(addr.sin_port);
        CHECK_THROWS_WITH(Upstream("host=127.0.0.1 port=" + std::to_string(closed_port) +
                                   " user=x dbname=y connect_timeout=2"),
                          Catch::Contains("cannot connect to Postgres at x@127.0.0.1:") &&
                              Catch::Contains("check [postgres] conninfo"));
        ::close(fd);
    }
    SECTION("wrong password, never echoed") {
        const auto up = fresh_upstream();
        try {
            Upstream(pg.conninfo_as("lestash_daemon_test", "not-the-password", up.name));
            FAIL("connected with a wrong password");
        } catch (const UpstreamError& e) {
            CHECK_THAT(e.what(), Catch::Contains("password") && Catch::Contains(".pgpass"));
            CHECK_THAT(e.what(), !Catch::Contains("not-the-password"));
            CHECK_FALSE(e.transient());
        }
    }
    SECTION("Postgres without the migrations") {
        const auto name = pg.create_database("bare");
        Upstream upstream(pg.conninfo(name));
        Replica replica({path});
        CHECK_THROWS_WITH(SyncEngine(replica, upstream),
                          Catch::Contains("no lestash schema") && Catch::Contains("migrate"));
    }
    SECTION("a replica whose schema cannot be mapped") {
        const auto odd = dir.file("odd.db");
        {
            sqlite::Connection db(odd, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
            db.exec(read_file(schema_fixture(11)));
            db.exec(
                "CREATE TABLE items_new (id TEXT PRIMARY KEY, source_type TEXT, source_id "
                "TEXT, content TEXT); DROP TABLE items; ALTER TABLE items_new RENAME TO items;");
        }
        CHECK_THROWS_WITH(Replica({odd}), Catch::Contains("INTEGER PRIMARY KEY"));
    }
    CHECK(depth() == 1);
}

TEST_CASE_METHOD(OneReplica, "verify finds rows that differ from Postgres and repairs only those",
                 "[sync][verify]") {
    AppWriter app(a.path());
    for (int i = 0; i < 40; ++i)
        app.upsert_item(post("p" + std::to_string(i), "content " + std::to_string(i)));
    a.sync();
    CHECK(a.engine().verify(false).matches());

    // Divergence the change log cannot explain: a change Postgres never
    // announced, a local write the triggers never saw, a row lost locally.
    shared_postgres().exec(
        "UPDATE lestash.items SET title = 'silently changed' WHERE source_id = "
        "'p3'; DELETE FROM lestash.change_log;",
        up.name);
    {
        ApplyScope tamper(a.replica().db());
        a.replica().db().exec("UPDATE items SET content = 'bit rot' WHERE source_id = 'p7'");
        a.replica().db().exec("DELETE FROM items WHERE source_id = 'p9'");
        tamper.commit();
    }
    int progress_calls = 0;
    const auto report =
        a.engine().verify(false, [&](const std::string&, int, int) { ++progress_calls; });
    CHECK_FALSE(report.matches());
    CHECK(progress_calls == static_cast<int>(default_table_specs().size()));
    const auto& items = report.tables.front();
    REQUIRE(items.table == "items");
    CHECK(items.different.size() == 2);
    CHECK(items.missing_locally.size() == 1);
    CHECK(items.buckets_differing <= 3);
    CHECK(items.upstream_rows == 40);

    // The title Postgres changed is fetched, the lost row fetched again;
    // the local content Postgres never had is pushed, not overwritten.
    const auto repaired = a.engine().verify(true);
    CHECK(repaired.tables.front().repaired == 3);
    CHECK(repaired.tables.front().fetched == 2);
    CHECK(repaired.tables.front().pushed == 1);
    CHECK(a.engine().verify(false).matches());
    CHECK(one_text(a.replica().db(), "SELECT title FROM items WHERE source_id = 'p3'") ==
          "silently changed");
    CHECK(one_text(a.replica().db(), "SELECT content FROM items WHERE source_id = 'p7'") ==
          "bit rot");
    CHECK(a.replica().db().query_int("SELECT count(*) FROM items") == 40);
    CHECK(a.replica().outbox().depth() == 0);  // repairs are not captured as local changes
    require_converged(a);

    // An app edit not pushed yet differs from Postgres by design: left out
    // and counted, not reported.
    app.upsert_item(post("p1", "edited, not pushed yet"));
    const auto pending = a.engine().verify(false);
    CHECK(pending.matches());
    CHECK(pending.pending_local_rows > 0);  // the item and its history rows
    CHECK(pending.pending_local_rows == a.replica().outbox().depth());
    CHECK(pending.tables.front().local_rows == 39);
}

TEST_CASE_METHOD(TwoReplicas, "a replica offline longer than the change log keeps resyncs in full",
                 "[sync][resync]") {
    AppWriter app_a(a.path());
    const auto doomed = app_a.upsert_item(post("doomed", "will be deleted while B is away"));
    app_a.upsert_item(post("kept", "stays"));
    sync_until_quiet({&a, &b});
    // B is away: A deletes one item and adds another; the log is compacted.
    app_a.delete_item(doomed);
    app_a.upsert_item(post("new", "written while B was away"));
    a.sync();
    pqxx::connection pg(up.admin_conninfo);
    CHECK(count(pg, "SELECT lestash.compact_change_log('0 seconds')") > 0);
    CHECK(count(pg, "SELECT count(*) FROM lestash.change_log") == 0);
    b.sync();
    CHECK(one_text(b.replica().db(),
                   "SELECT group_concat(source_id, ',') FROM (SELECT source_id "
                   "FROM items ORDER BY source_id)") == "kept,new");
    require_converged(b);
}

TEST_CASE(
    "a bootstrap cut short runs again as a resync: rows deleted upstream meanwhile go, "
    "the replica's refused ones stay",
    "[sync][resync]") {
    const auto up = upstream_refusing_reject_me();
    TempDir dir;
    TestReplica a(dir.file("a.db"), up.daemon_conninfo);
    AppWriter app_a(a.path());
    const auto doomed = app_a.upsert_item(post("doomed", "deleted while B's bootstrap is away"));
    app_a.upsert_item(post("kept", "stays"));
    a.sync();

    bool crash = true;
    SyncOptions opts;
    opts.fault_hook = [&](std::string_view point) {
        if (point == "pull:before-cursor-save" && crash)
            throw std::runtime_error("simulated crash before the bootstrap's last step");
    };
    TestReplica b(dir.file("b.db"), up.daemon_conninfo, 11, opts);
    AppWriter app_b(b.path());
    auto refused = post("refused", "Postgres never had this one");
    refused.title = "reject me";
    app_b.upsert_item(refused);
    // B pushes first (its row becomes a dead letter), then copies every
    // page and is cut short before the step that saves its cursor.
    CHECK_THROWS_WITH(b.sync(), Catch::Contains("simulated crash"));
    CHECK_FALSE(b.replica().meta("pull_cursor"));
    CHECK(one_text(b.replica().db(),
                   "SELECT group_concat(source_id, ',') FROM (SELECT source_id "
                   "FROM items ORDER BY source_id)") == "doomed,kept,refused");

    app_a.delete_item(doomed);
    a.sync();
    crash = false;
    b.sync();
    CHECK(one_text(b.replica().db(),
                   "SELECT group_concat(source_id, ',') FROM (SELECT source_id "
                   "FROM items ORDER BY source_id)") == "kept,refused");
    CHECK(b.replica().db().query_int("SELECT count(*) FROM _lestash_sync_dead_letters") == 1);
    pqxx::connection pg(up.admin_conninfo);
    CHECK(count(pg, "SELECT count(*) FROM lestash.items") == 1);
}

TEST_CASE("a resync removes a row deleted upstream even when an edit of it was refused",
          "[sync][resync]") {
    const auto up = upstream_refusing_reject_me();
    TempDir dir;
    TestReplica a(dir.file("a.db"), up.daemon_conninfo);
    TestReplica b(dir.file("b.db"), up.daemon_conninfo);
    AppWriter app_a(a.path()), app_b(b.path());
    const auto x = app_a.upsert_item(post("x", "once everywhere"));
    sync_until_quiet({&a, &b});
    auto edit = post("x", "edited on B, refused");
    edit.title = "reject me";
    app_b.upsert_item(edit);
    b.sync();  // the update is a dead letter: Postgres had the row all along
    REQUIRE(b.replica().db().query_int("SELECT count(*) FROM _lestash_sync_dead_letters") == 1);
    app_a.delete_item(x);
    a.sync();
    pqxx::connection pg(up.admin_conninfo);
    CHECK(count(pg, "SELECT lestash.compact_change_log('0 seconds')") > 0);
    b.sync();  // a resync: x is gone upstream, deleted there
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items WHERE source_id = 'x'") == 0);
}

TEST_CASE_METHOD(OneReplica,
                 "a pull that reads less than a batch stops there, one that fills a batch reads on",
                 "[sync][pull]") {
    int fetches = 0;
    SyncOptions opts;
    opts.pull_batch = 4;
    opts.fault_hook = [&](std::string_view point) {
        if (point == "pull:fetch")
            ++fetches;
    };
    TestReplica b(dir.file("b.db"), up.daemon_conninfo, 11, opts);
    b.sync();  // bootstrap: nothing yet
    AppWriter app(a.path());
    for (int i = 0; i < 3; ++i) app.upsert_item(post("short-" + std::to_string(i), "three"));
    a.sync();
    fetches = 0;
    auto pulled = b.engine().pull_all();
    CHECK(pulled.changes == 3);
    CHECK(pulled.caught_up);
    CHECK(fetches == 1);  // one round of Postgres queries, not a second that finds nothing

    for (int i = 0; i < 9; ++i) app.upsert_item(post("long-" + std::to_string(i), "nine"));
    a.sync();
    fetches = 0;
    pulled = b.engine().pull_all();
    CHECK(pulled.changes == 9);  // batches of 4, 4 and 1
    CHECK(fetches == 3);
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items") == 12);
    require_converged(b);
}

TEST_CASE_METHOD(OneReplica, "a large pull never locks the app out", "[sync][app]") {
    {
        AppWriter app(a.path());
        sqlite::Transaction txn(app.db());
        for (int i = 0; i < 6000; ++i)
            app.insert_item(
                post("bulk" + std::to_string(i), std::string(1200, 'x') + std::to_string(i)));
        txn.commit();
    }
    a.sync();
    TestReplica b(dir.file("b.db"), up.daemon_conninfo);
    std::atomic<bool> done{false};
    std::atomic<int> writes{0}, locked{0};
    double worst_wait_ms = 0;
    std::thread app_thread([&] {
        // The CLI: its own connection, 5 s busy timeout, short writes.
        AppWriter app(b.path());
        while (!done) {
            const auto t0 = std::chrono::steady_clock::now();
            try {
                ItemFields note;
                note.content = "written while the replica bootstraps";
                app.insert_item(note);
                ++writes;
            } catch (const LocalDatabaseError& e) {
                if (std::string(e.what()).find("locked") != std::string::npos)
                    ++locked;
            }
            worst_wait_ms = std::max(worst_wait_ms, std::chrono::duration<double, std::milli>(
                                                        std::chrono::steady_clock::now() - t0)
                                                        .count());
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    b.sync();
    done = true;
    app_thread.join();
    WARN("app writes during the pull: " << writes << ", longest wait " << worst_wait_ms << " ms");
    CHECK(locked == 0);
    CHECK(writes > 0);
    CHECK(b.replica().db().query_int("SELECT count(*) FROM items WHERE source_type = 'bluesky'") ==
          6000);
    sync_until_quiet({&a, &b});
    require_converged(b);
}

TEST_CASE_METHOD(TwoReplicas, "random values of every storage class round-trip exactly (property)",
                 "[sync][property]") {
    const unsigned seed = 777;
    std::mt19937_64 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
    auto random_value = [&]() -> sqlite::Value {
        switch (pick(7)) {
            case 0:
                return std::monostate{};
            case 1: {
                static const std::int64_t edges[] = {0, 1, -1, INT64_MAX, INT64_MIN, 2, 255};
                return pick(2) ? static_cast<std::int64_t>(rng()) : edges[pick(7)];
            }
            case 2: {
                double d;
                do {
                    const std::uint64_t bits = rng();
                    std::memcpy(&d, &bits, sizeof d);
                } while (std::isnan(d));
                return pick(3) ? d : static_cast<double>(pick(1000)) / 8.0;
            }
            case 3: {
                std::string s;
                for (int i = pick(40); i > 0; --i) s += static_cast<char>(pick(256));
                return s;  // arbitrary bytes: often not UTF-8, sometimes NUL
            }
            case 4: {
                static const char* texts[] = {"",
                                              " ",
                                              "ascii",
                                              "ünïcødé",
                                              "😀 emoji",
                                              "{\"a\": 1}",
                                              "2024-01-01 10:00:00",
                                              "line\nbreak",
                                              "'quote\""};
                return std::string(texts[pick(9)]);
            }
            case 5: {
                std::string bytes;
                for (int i = pick(20); i > 0; --i) bytes += static_cast<char>(pick(256));
                return sqlite::Blob{bytes};
            }
            default:
                return std::string("x") + std::to_string(pick(100000));
        }
    };
    {
        // Columns without TEXT/INTEGER affinity keep any storage class.
        sqlite::Statement ins(a.replica().db(),
                              "INSERT INTO items (source_type, source_id, content, created_at, "
                              "fetched_at, is_own_content) VALUES ('prop', ?, ?, ?, ?, ?)");
        for (int i = 0; i < 300; ++i) {
            sqlite::Value content = random_value();
            if (content.index() == 0)
                content = std::string("c");
            ins.bind(1, "p" + std::to_string(i))
                .bind(2, content)
                .bind(3, random_value())
                .bind(4, random_value())
                .bind(5, random_value());
            ins.run();
        }
    }
    sync_until_quiet({&a, &b});
    const std::string dump =
        "SELECT group_concat(source_id || ':' || typeof(content) || hex(content) || '|' || "
        "typeof(created_at) || quote(created_at) || '|' || typeof(fetched_at) || hex(fetched_at) "
        "|| '|' || typeof(is_own_content) || quote(is_own_content), char(10)) FROM (SELECT * FROM "
        "items ORDER BY source_id)";
    INFO("seed " << seed);
    CHECK(one_text(a.replica().db(), dump) == one_text(b.replica().db(), dump));
    require_converged(a);
    require_converged(b);
}

TEST_CASE_METHOD(OneReplica,
                 "a push's relaxed commits leave the connection as it was and put random "
                 "identities on disk before Postgres hears of them",
                 "[sync][push]") {
    auto& db = a.replica().db();
    const auto level = db.query_int("PRAGMA synchronous");
    REQUIRE(level >= 2);  // FULL: what a commit that waits for the disk needs
    AppWriter app(a.path());
    app.insert_item(post("durable-1", "named by its natural key"));
    a.engine().push_all();
    CHECK(db.query_int("PRAGMA synchronous") == level);
    CHECK_FALSE(a.replica().meta("identities_on_disk_through"));  // assigned again alike if lost

    ItemFields note;
    note.content = "a note has no natural key: its identity is random";
    app.insert_item(note);
    a.engine().push_all();
    CHECK(db.query_int("PRAGMA synchronous") == level);
    CHECK(a.replica().meta("identities_on_disk_through"));
    CHECK(a.replica().outbox().empty());
    require_converged(a);
}
