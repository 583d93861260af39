// Change capture on real Le Stash databases (v1 and v11 fixtures), driven by
// the app's own write patterns.
#include <catch2/catch.hpp>

#include <algorithm>

#include "app_writer.hpp"
#include "lestash_sync/common/error.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "lestash_sync/replica/identity.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "temp_dir.hpp"

using namespace lestash;
using namespace lestash::test;

namespace {

// The outbox as readable lines: "items U 3 content,title".
std::vector<std::string> outbox_lines(Replica& r, std::int64_t after = 0) {
    std::vector<std::string> out;
    for (const auto& e : r.outbox().read(after, 10000)) {
        std::string line = e.table + " " + e.op + " ";
        line += e.local_id ? std::to_string(*e.local_id) : e.row_key;
        std::string changed;
        for (const auto& c : e.changed) changed += (changed.empty() ? "" : ",") + c;
        if (!changed.empty())
            line += " " + changed;
        out.push_back(line);
    }
    return out;
}

std::int64_t last_seq(Replica& r) {
    return r.db().query_int("SELECT coalesce(max(seq), 0) FROM _lestash_sync_outbox");
}

std::vector<std::string> app_objects(sqlite::Connection& db) {
    std::vector<std::string> out;
    sqlite::Statement st(db,
                         "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || "
                         "coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE "
                         "'\\_lestash\\_sync\\_%' ESCAPE '\\' AND name <> 'sqlite_sequence' "
                         "ORDER BY name");
    while (st.step()) out.push_back(st.text(0));
    out.push_back("user_version " + std::to_string(db.query_int("PRAGMA user_version")));
    return out;
}

ItemFields post(const std::string& id, const std::string& content) {
    ItemFields f;
    f.source_type = "bluesky";
    f.source_id = id;
    f.title = "Post " + id;
    f.content = content;
    f.author = "alice";
    f.metadata = R"({"likes": 3})";
    return f;
}

}  // namespace

TEST_CASE("attaching leaves the app's objects byte-identical and the database sound", "[attach]") {
    const int version = GENERATE(1, 11);
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, version);
    std::vector<std::string> before;
    {
        AppWriter app(path);
        app.upsert_item(post("1", "hello world"));
        before = app_objects(app.db());
    }
    Replica replica({path});
    CHECK(app_objects(replica.db()) == before);
    CHECK(replica.db().query_text("PRAGMA integrity_check") == "ok");
    CHECK_NOTHROW(replica.db().exec("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')"));
    CHECK(replica.db().query_text("PRAGMA journal_mode") == "wal");
    // Rows that existed before the first attach are local changes to push.
    CHECK(outbox_lines(replica) == std::vector<std::string>{"items I 1"});

    // Attaching again changes nothing and captures nothing twice.
    Replica again({path});
    CHECK(app_objects(again.db()) == before);
    CHECK(again.outbox().depth() == 1);
    CHECK(again.replica_id() == replica.replica_id());
}

TEST_CASE("a missing database is created with the Le Stash v11 schema", "[attach]") {
    TempDir dir;
    const auto path = dir.file("new.db");
    Replica replica({path});
    CHECK(replica.db().query_int("PRAGMA user_version") == 11);
    CHECK(replica.live_columns("items").back() == "parent_id");
    CHECK(replica.outbox().depth() == 0);
    CHECK_FALSE(std::filesystem::exists(path + ".creating-" + std::to_string(::getpid())));
}

TEST_CASE("every write pattern of the Le Stash CLI yields exactly the expected outbox entries",
          "[capture]") {
    const int version = GENERATE(1, 11);
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, version);
    Replica replica({path});
    AppWriter app(path);

    SECTION("upsert on the natural key, history trigger and re-tagging") {
        const auto id = app.upsert_item(post("p1", "first"));
        CHECK(outbox_lines(replica) == std::vector<std::string>{"items I 1"});
        auto mark = last_seq(replica);
        // Same values: the CLI's WHERE clause makes this a no-op.
        app.upsert_item(post("p1", "first"));
        CHECK(outbox_lines(replica, mark).empty());
        app.upsert_item(post("p1", "second"));
        CHECK(outbox_lines(replica, mark) ==
              std::vector<std::string>{"item_history I 1",
                                       "items U " + std::to_string(id) + " content",
                                       "item_history U 1 change_reason"});
    }
    SECTION("NULL source_id notes are separate rows") {
        ItemFields note;
        note.content = "a thought";
        app.insert_item(note);
        app.insert_item(note);
        CHECK(outbox_lines(replica) == std::vector<std::string>{"items I 1", "items I 2"});
    }
    SECTION("tags and item_tags") {
        const auto id = app.upsert_item(post("p1", "x"));
        auto mark = last_seq(replica);
        app.add_tag(id, "rust");
        app.add_tag(id, "rust");  // INSERT OR IGNORE twice: captured once
        CHECK(outbox_lines(replica, mark) ==
              std::vector<std::string>{"tags I 1", "item_tags I [1,1]"});
        mark = last_seq(replica);
        app.remove_tag(id, "rust");
        CHECK(outbox_lines(replica, mark) == std::vector<std::string>{"item_tags D [1,1]"});
    }
    SECTION("sources upsert changes only what differs") {
        app.upsert_source("bluesky", true, std::nullopt);
        auto mark = last_seq(replica);
        app.upsert_source("bluesky", true, "2024-05-01 10:00:00");
        CHECK(outbox_lines(replica, mark) == std::vector<std::string>{"sources U 1 last_sync"});
    }
    SECTION("sync_log insert then update") {
        const auto id = app.start_sync_log("bluesky");
        app.finish_sync_log(id, "completed", 5, 2, std::nullopt);
        CHECK(outbox_lines(replica) ==
              std::vector<std::string>{
                  "sync_log I 1", "sync_log U 1 completed_at,status,items_added,items_updated"});
    }
    SECTION("deleting an item cascades, and every cascaded row is captured") {
        const auto id = app.upsert_item(post("p1", "one"));
        app.upsert_item(post("p1", "two"));
        app.add_tag(id, "t");
        auto mark = last_seq(replica);
        app.delete_item(id);
        auto lines = outbox_lines(replica, mark);
        std::sort(lines.begin(), lines.end());
        CHECK(lines ==
              std::vector<std::string>{"item_history D 1", "item_tags D [1,1]", "items D 1"});
    }
    CHECK(replica.db().query_text("PRAGMA integrity_check") == "ok");
    CHECK_NOTHROW(replica.db().exec("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')"));
}

TEST_CASE("a delete records the identity the row had, and a reused rowid gets a new one",
          "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica({path});
    AppWriter app(path);
    const auto id = app.upsert_item(post("p1", "x"));
    IdentityMap(replica.db())
        .set("items", id, "00112233-4455-6677-8899-aabbccddeeff", std::nullopt);
    auto mark = last_seq(replica);
    app.delete_item(id);
    auto entries = replica.outbox().read(mark, 10);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].row_uuid == "00112233-4455-6677-8899-aabbccddeeff");
    // The app reuses the rowid for a new row: the stale mapping is gone.
    app.upsert_item(post("p2", "y"));
    CHECK(replica.db().query_int("SELECT count(*) FROM _lestash_sync_ids") == 0);
}

TEST_CASE("engine-applied writes produce no outbox entries, app writes in the same second do",
          "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica({path});
    AppWriter app(path);
    {
        ApplyScope apply(replica.db());
        replica.db().exec(
            "INSERT INTO items (source_type, source_id, content) VALUES ('remote', 'r1', 'from "
            "elsewhere')");
        replica.db().exec("UPDATE items SET content = 'changed' WHERE source_id = 'r1'");
        apply.commit();
    }
    app.upsert_item(post("local", "mine"));
    CHECK(outbox_lines(replica) == std::vector<std::string>{"items I 2"});
    // The flag row was never committed.
    CHECK(app.db().query_int("SELECT count(*) FROM _lestash_sync_applying") == 0);
    // The app's history trigger fired for the engine's update, as expected;
    // removing such rows is the apply step's job.
    CHECK(replica.db().query_int("SELECT count(*) FROM item_history") == 1);
}

TEST_CASE("an apply that fails leaves neither its rows nor the flag behind", "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica({path});
    try {
        ApplyScope apply(replica.db());
        replica.db().exec("INSERT INTO items (source_type, content) VALUES ('remote', 'x')");
        throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
    }
    CHECK(replica.db().query_int("SELECT count(*) FROM items") == 0);
    CHECK(replica.db().query_int("SELECT count(*) FROM _lestash_sync_applying") == 0);
    AppWriter app(path);
    app.upsert_item(post("p", "x"));
    CHECK(replica.outbox().depth() == 1);
}

TEST_CASE("capture follows the app's migration from v1 to a parent_id column", "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 1);
    Replica replica({path});
    AppWriter app(path);
    const auto parent = app.upsert_item(post("p1", "parent"));
    const auto child = app.upsert_item(post("p2", "child"));
    CHECK_FALSE(replica.follow_schema_changes());

    // The app's migration 5.
    app.db().exec(
        "ALTER TABLE items ADD COLUMN parent_id INTEGER;"
        "CREATE INDEX idx_items_parent ON items(parent_id);");
    CHECK(replica.follow_schema_changes());
    auto mark = last_seq(replica);
    app.db().exec("UPDATE items SET parent_id = " + std::to_string(parent) +
                  " WHERE id = " + std::to_string(child));
    CHECK(outbox_lines(replica, mark) ==
          std::vector<std::string>{"items U " + std::to_string(child) + " parent_id"});
    CHECK(std::find(replica.synced_columns("items").begin(), replica.synced_columns("items").end(),
                    "parent_id") != replica.synced_columns("items").end());
}

TEST_CASE("values written into a new column before the triggers caught up are captured",
          "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 1);
    Replica replica({path});
    AppWriter app(path);
    app.upsert_item(post("p1", "parent"));
    const auto child = app.upsert_item(post("p2", "child"));
    auto mark = last_seq(replica);
    app.db().exec(
        "ALTER TABLE items ADD COLUMN parent_id INTEGER; UPDATE items SET parent_id = 1 "
        "WHERE id = " +
        std::to_string(child));
    // The old trigger did not know the column: nothing captured yet.
    CHECK(outbox_lines(replica, mark).empty());
    replica.follow_schema_changes();
    CHECK(outbox_lines(replica, mark) ==
          std::vector<std::string>{"items U " + std::to_string(child) + " parent_id"});
}

TEST_CASE("a synced column dropped by the app stops sync with a clear message", "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica({path});
    AppWriter app(path);
    // Dropping a column the triggers use requires removing the triggers first,
    // as a table-rebuild migration would.
    app.db().exec(
        "DROP TRIGGER _lestash_sync_sync_log_update;"
        "ALTER TABLE sync_log DROP COLUMN error_message;");
    CHECK_THROWS_WITH(replica.follow_schema_changes(),
                      Catch::Contains("sync_log.error_message was removed"));
}

TEST_CASE("the tables the app has not created yet wait, and join when it creates them",
          "[capture][upgrade]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 1);
    Replica replica({path});
    CHECK(replica.waiting_tables() == std::vector<std::string>{"person_profiles", "collections",
                                                               "collection_items", "item_media",
                                                               "syndications"});
    CHECK(replica.tables().size() == 6);
    AppWriter app(path);
    const auto item = app.upsert_item(post("p1", "x"));

    // The app's own steps 2..6: profiles, post_cache (stays local), parent_id,
    // collections. A collection made before the daemon noticed is queued.
    upgrade_app_schema(path, 1, 6);
    const auto list = app.create_collection("list", std::nullopt);
    app.add_to_collection(list, item, "a note");
    auto mark = last_seq(replica);
    CHECK(replica.follow_schema_changes());
    CHECK(replica.waiting_tables() == std::vector<std::string>{"item_media", "syndications"});
    CHECK(outbox_lines(replica, mark) ==
          std::vector<std::string>{"collections I 1", "collection_items I [1,1]"});
    CHECK(replica.unsynced_tables().empty());  // post_cache is known: it stays local

    // The app's later writes on the new tables are captured like any other.
    // (Timestamps set back, so CURRENT_TIMESTAMP changes them within the second.)
    app.db().exec("UPDATE collections SET updated_at = '2020-01-01 00:00:00'");
    app.upsert_profile("urn:li:person:a", "A");
    app.db().exec("UPDATE person_profiles SET updated_at = '2020-01-01 00:00:00'");
    mark = last_seq(replica);
    app.upsert_profile("urn:li:person:a", "A");  // unchanged: nothing
    app.upsert_profile("urn:li:person:a", "B");
    app.db().exec("UPDATE collection_items SET note = 'changed'");
    app.remove_from_collection(list, item);
    CHECK(outbox_lines(replica, mark) ==
          std::vector<std::string>{"person_profiles U 1 display_name,updated_at",
                                   "collection_items U [1,1] note", "collection_items D [1,1]",
                                   "collections U 1 updated_at"});

    upgrade_app_schema(path, 6, 11);
    mark = last_seq(replica);
    CHECK(replica.follow_schema_changes());
    CHECK(replica.waiting_tables().empty());
    app.add_media(item, "image", std::nullopt, "1/abc.png");
    CHECK_FALSE(app.add_media(item, "image", std::nullopt, "1/abc.png"));  // NULLs equal
    app.record_syndication(item, "bluesky", "at://x", std::nullopt);
    app.delete_item(item);  // cascades as the app's foreign keys do
    CHECK(outbox_lines(replica, mark) ==
          std::vector<std::string>{"item_media I 1", "syndications I 1", "syndications D 1",
                                   "item_media D 1", "items D 1"});
}

TEST_CASE("a table lestash-sync does not know is reported once and stays local", "[capture]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    {
        AppWriter app(path);
        app.db().exec("CREATE TABLE reading_goals (id INTEGER PRIMARY KEY, goal TEXT)");
    }
    Replica replica({path});
    CHECK(replica.unsynced_tables() == std::vector<std::string>{"reading_goals"});
    CHECK(replica.meta("unsynced:reading_goals"));  // said once: a restart does not repeat it
    AppWriter app(path);
    app.db().exec("INSERT INTO reading_goals (goal) VALUES ('read more')");
    CHECK(outbox_lines(replica).empty());
    Replica again({path});
    CHECK(again.unsynced_tables() == std::vector<std::string>{"reading_goals"});
}
