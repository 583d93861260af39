// The media queue on real Le Stash databases: the daemon's triggers on
// item_media fed by the app's writes and by the engine's applies, the paths
// the daemon refuses to touch, SHA-256. No Postgres here (tests/integration/
// media_test.cpp moves files).
#include <catch2/catch.hpp>

#include "app_writer.hpp"
#include "lestash_sync/common/sha256.hpp"
#include "lestash_sync/media/media_queue.hpp"
#include "lestash_sync/media_store/media_path.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "temp_dir.hpp"

using namespace lestash;
using namespace lestash::test;

namespace {

std::int64_t note(AppWriter& app, const std::string& id) {
    ItemFields item;
    item.source_id = id;
    item.content = "a note with a picture " + id;
    return app.upsert_item(item);
}

std::int64_t triggers_named(sqlite::Connection& db, const std::string& like) {
    sqlite::Statement st(
        db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?");
    st.bind(1, like);
    st.step();
    return st.integer(0);
}

}  // namespace

TEST_CASE("SHA-256 is the standard one, whole or in pieces", "[media]") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    Sha256 pieces;
    pieces.update("a");
    pieces.update("");
    pieces.update("bc");
    CHECK(pieces.hex_digest() == sha256_hex("abc"));
    pieces.update("abc");  // starts over after a digest
    CHECK(pieces.hex_digest() == sha256_hex("abc"));
}

TEST_CASE("media paths that could leave the media folder are refused", "[media]") {
    for (const char* fine : {"12/3f2a9c0d1b4e.jpg", "a", "12/x/y.pdf", "..hidden", "a..b/c"})
        CHECK(media_path_problem(fine).empty());
    for (const char* bad :
         {"", "/etc/passwd", "../x", "12/../../x", "12/./x", "12//x", "12/", "..", "a\\b"})
        CHECK_FALSE(media_path_problem(bad).empty());
    CHECK_FALSE(media_path_problem(std::string("a\0b", 3)).empty());

    CHECK(name_digest_prefix("12/3f2a9c0d1b4e.jpg") == "3f2a9c0d1b4e");
    CHECK(name_digest_prefix("3f2a9c0d1b4e") == "3f2a9c0d1b4e");
    CHECK(name_digest_prefix("12/3F2A9C0D1B4E.jpg").empty());  // the app writes lowercase
    CHECK(name_digest_prefix("12/photo.jpg").empty());
    CHECK(name_digest_prefix("12/3f2a9c0d1b4e5.jpg").empty());
    CHECK(partial_path("/m/12/3f2a9c0d1b4e.jpg") == "/m/12/.3f2a9c0d1b4e.jpg.lestash-partial");
    CHECK(media_root("/home/me/.config/lestash/lestash.db") == "/home/me/.config/lestash/media");
}

TEST_CASE("a media file's Content-Type comes from its extension", "[media][endpoint]") {
    CHECK(media_content_type("12/3f2a9c0d1b4e.jpg") == "image/jpeg");
    CHECK(media_content_type("12/3f2a9c0d1b4e.JPEG") == "image/jpeg");
    CHECK(media_content_type("12/paper.pdf") == "application/pdf");
    CHECK(media_content_type("12/notes.txt") == "text/plain; charset=utf-8");
    for (const char* other : {"12/3f2a9c0d1b4e", "12/x.unknown", "12/.jpg", "x.jpg/y", "12/a."})
        CHECK(media_content_type(other) == "application/octet-stream");
}

TEST_CASE(
    "the media triggers queue the app's rows as made here and applied rows as from "
    "elsewhere",
    "[media]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica(AttachOptions{path});
    MediaQueue queue(replica.db());
    REQUIRE(queue.item_media_exists());
    queue.install_and_reconcile();
    AppWriter app(path);

    const auto item = note(app, "n1");
    const auto mine = app.save_media(item, "jpeg bytes", ".jpg");
    const auto entry = queue.get(mine);
    REQUIRE(entry);
    CHECK(entry->state == "new");
    CHECK(entry->origin == "here");

    // The app skips a duplicate row; a second row for the same path (a
    // thumbnail of the same file) is one queue entry.
    CHECK(app.add_media_row(item, "image", std::nullopt, mine, "image/jpeg") == 0);
    const auto thumb = app.add_media_row(item, "thumbnail", std::nullopt, mine, "image/jpeg");
    CHECK(thumb > 0);
    CHECK(queue.referenced_paths() == std::vector<std::string>{mine});

    // A row the engine applies (inside its ApplyScope) is from elsewhere.
    {
        ApplyScope apply(replica.db());
        replica.db().exec("INSERT INTO item_media (item_id, media_type, local_path) VALUES (" +
                          std::to_string(item) + ", 'image', '77/aaaaaaaaaaaa.png')");
        apply.commit();
    }
    REQUIRE(queue.get("77/aaaaaaaaaaaa.png"));
    CHECK(queue.get("77/aaaaaaaaaaaa.png")->origin == "elsewhere");
    // Rows without a file (remote-only media with a url) queue nothing.
    app.add_media_row(item, "link", "https://example.org/a.png", std::nullopt, std::nullopt);
    CHECK(queue.counts()["new"] == 2);

    // An app statement with OR REPLACE does not reset the queue entry
    // (SQLite hands the outer conflict policy to trigger bodies).
    auto settled = *queue.get(mine);
    settled.state = "uploaded";
    queue.save(settled);
    replica.db().exec(
        "INSERT OR REPLACE INTO item_media (item_id, media_type, local_path) VALUES (" +
        std::to_string(item) + ", 'preview', '" + mine + "')");
    CHECK(queue.get(mine)->state == "uploaded");

    // Deleting one of the rows naming a path leaves it named; deleting the
    // item (the app's cascade) leaves nothing naming either path.
    app.delete_media_row(thumb);
    CHECK(queue.unreferenced(100).empty());
    app.delete_item(item);
    const auto gone = queue.unreferenced(100);
    REQUIRE(gone.size() == 2);
    CHECK(gone[0].path == mine);  // sorted by path
    CHECK(gone[1].path == "77/aaaaaaaaaaaa.png");
}

TEST_CASE(
    "rows written while the media triggers were missing are queued by the reconcile, and "
    "a path named again is not removed",
    "[media]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    AppWriter app(path);
    const auto item = note(app, "n1");
    const auto before = app.save_media(item, "written before lestash-sync", ".jpg");

    Replica replica(AttachOptions{path});
    MediaQueue queue(replica.db());
    CHECK_FALSE(queue.get(before));
    queue.install_and_reconcile();
    REQUIRE(queue.get(before));
    CHECK(queue.get(before)->origin == "unknown");  // looked at on disk when classified

    // Re-attaching (the daemon restarted, `lestash-syncd --once`) and the
    // app changing its schema keep the media triggers: the replica drops
    // only capture triggers of tables it no longer syncs.
    CHECK(triggers_named(replica.db(), "_lestash_sync_media_on_%") == 3);
    { Replica again(AttachOptions{path, select_tables({"items", "tags"})}); }
    CHECK(triggers_named(replica.db(), "_lestash_sync_item_history_%") == 0);  // not synced there
    CHECK(triggers_named(replica.db(), "_lestash_sync_media_on_%") == 3);
    app.db().exec("CREATE TABLE app_added_later (id INTEGER PRIMARY KEY)");
    replica.follow_schema_changes();
    CHECK(triggers_named(replica.db(), "_lestash_sync_item_history_%") == 4);
    CHECK(triggers_named(replica.db(), "_lestash_sync_media_on_%") == 3);

    // A row deleted and its path named again before the daemon looked:
    // still named, not removed.
    const auto media_id = app.db().query_int("SELECT id FROM item_media");
    app.delete_media_row(media_id);
    app.add_media_row(item, "image", std::nullopt, before, "image/jpeg");
    CHECK(queue.unreferenced(100).empty());
    // A path nothing names any more, found at the next reconcile too.
    app.db().exec("DROP TRIGGER _lestash_sync_media_on_delete");
    app.db().exec("DELETE FROM item_media");
    CHECK(queue.unreferenced(100).empty());
    queue.install_and_reconcile();
    REQUIRE(queue.unreferenced(100).size() == 1);
}

TEST_CASE("a v1 database has no item_media until the app creates it", "[media]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 1);
    Replica replica(AttachOptions{
        path, select_tables({"items", "item_history", "tags", "sources", "sync_log"})});
    MediaQueue queue(replica.db());
    CHECK_FALSE(queue.item_media_exists());
    AppWriter app(path);
    // The app's upgrade step 7.
    app.db().exec(
        "CREATE TABLE item_media (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES "
        "items(id) ON DELETE CASCADE, media_type TEXT NOT NULL, url TEXT, local_path TEXT, "
        "mime_type TEXT, alt_text TEXT, position INTEGER DEFAULT 0, source_origin TEXT DEFAULT "
        "'sync', created_at DATETIME DEFAULT CURRENT_TIMESTAMP)");
    CHECK(queue.item_media_exists());
    queue.install_and_reconcile();
    const auto item = note(app, "n1");
    const auto p = app.save_media(item, "after the upgrade", ".png");
    REQUIRE(queue.get(p));
    CHECK(queue.get(p)->origin == "here");
}
