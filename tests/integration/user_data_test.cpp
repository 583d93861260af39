// Issue 15 part A: every user table of Le Stash syncs (collections, their
// items and notes, media rows, syndications, profiles), the app's own
// v1 -> v11 upgrade under two running daemons, one rule for soft references,
// and a verify --repair that keeps values Postgres never had.
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

std::string one_text(sqlite::Connection& db, const std::string& sql) {
    return db.query_text(sql).value_or("<NULL>");
}

std::int64_t count(TestReplica& r, const std::string& sql) {
    return r.replica().db().query_int(sql);
}

// The outbox, as "table op" per entry, in order.
std::vector<std::string> outbox_ops(TestReplica& r) {
    std::vector<std::string> out;
    for (const auto& e : r.replica().outbox().read(0, 1000))
        out.push_back(e.table + " " + std::string(1, e.op));
    return out;
}

ItemFields paper(const std::string& id, const std::string& content) {
    ItemFields f;
    f.source_type = "arxiv";
    f.source_id = id;
    f.content = content;
    return f;
}

std::int64_t id_of(TestReplica& r, const std::string& source_id) {
    return count(r, "SELECT id FROM items WHERE source_id = '" + source_id + "'");
}

std::int64_t pg_int(const UpstreamDatabase& up, const std::string& sql) {
    pqxx::connection c(up.admin_conninfo);
    pqxx::nontransaction q(c);
    return q.exec1(sql)[0].as<std::int64_t>();
}

}  // namespace

TEST_CASE_METHOD(TwoReplicas,
                 "collections, notes, media rows, syndications and profiles sync as the app "
                 "writes them",
                 "[sync][user-data]") {
    AppWriter app_a(a.path()), app_b(b.path());
    const auto item = app_a.upsert_item(paper("2401.00001", "a paper"));
    a.sync();

    // Collections: create, add an item with a note (updated_at touched).
    const auto list = app_a.create_collection("Reading list", "to read");
    CHECK(outbox_ops(a) == std::vector<std::string>{"collections I"});
    // (Set back, so the touch below changes it within the same second.)
    app_a.db().exec("UPDATE collections SET updated_at = '2020-01-01 00:00:00'");
    a.sync();
    app_a.add_to_collection(list, item, "chapter 3 first");
    CHECK(outbox_ops(a) == std::vector<std::string>{"collection_items I", "collections U"});
    // Media: a row per attachment, duplicates skipped (NULLs equal).
    const auto image = app_a.add_media(item, "image", std::nullopt, "1/0123456789ab.png");
    REQUIRE(image);
    CHECK_FALSE(app_a.add_media(item, "image", std::nullopt, "1/0123456789ab.png"));
    REQUIRE(app_a.add_media(item, "pdf", "https://arxiv.org/pdf/2401.00001", std::nullopt));
    app_a.record_syndication(item, "bluesky", "at://did:plc:x/post/1", "{\"ok\":true}");
    app_a.upsert_profile("urn:li:person:abc", "Ada");
    app_a.upsert_profile("urn:li:person:abc", "Ada");  // unchanged: no write
    CHECK(outbox_ops(a).size() == 2 + 2 + 1 + 1);
    sync_until_quiet({&a, &b});
    require_converged(a);
    require_converged(b);
    CHECK(one_text(b.replica().db(), "SELECT note FROM collection_items") == "chapter 3 first");
    CHECK(one_text(b.replica().db(), "SELECT name || '/' || description FROM collections") ==
          "Reading list/to read");
    CHECK(count(b, "SELECT count(*) FROM item_media") == 2);
    CHECK(one_text(b.replica().db(),
                   "SELECT local_path FROM item_media WHERE media_type = "
                   "'image'") == "1/0123456789ab.png");
    CHECK(one_text(b.replica().db(), "SELECT target_url FROM syndications") ==
          "at://did:plc:x/post/1");
    CHECK(one_text(b.replica().db(), "SELECT display_name FROM person_profiles") == "Ada");

    // Edits on B travel back: a rename, a changed note (a link row's own
    // column, pushed as an update), a profile upsert.
    const auto list_b = count(b, "SELECT id FROM collections");
    app_b.rename_collection(list_b, "Read soon", std::nullopt);
    b.replica().db().exec("UPDATE collection_items SET note = 'skip chapter 2'");
    app_b.upsert_profile("urn:li:person:abc", "Ada Lovelace");
    CHECK(outbox_ops(b) ==
          std::vector<std::string>{"collections U", "collection_items U", "person_profiles U"});
    sync_until_quiet({&a, &b});
    CHECK(one_text(a.replica().db(), "SELECT name FROM collections") == "Read soon");
    CHECK(one_text(a.replica().db(), "SELECT note FROM collection_items") == "skip chapter 2");
    CHECK(one_text(a.replica().db(), "SELECT display_name FROM person_profiles") == "Ada Lovelace");
    CHECK(pg_int(up,
                 "SELECT count(*) FROM lestash.collection_items WHERE note = 'skip chapter "
                 "2'") == 1);

    // Removing an item from the list, deleting media and a profile.
    app_a.remove_from_collection(list, item);
    app_a.delete_media(*image);
    app_a.delete_profile("urn:li:person:abc");
    sync_until_quiet({&a, &b});
    CHECK(count(b, "SELECT count(*) FROM collection_items") == 0);
    CHECK(count(b, "SELECT count(*) FROM item_media") == 1);
    CHECK(count(b, "SELECT count(*) FROM person_profiles") == 0);
    require_converged(b);

    // Deleting an item cascades as the app's foreign keys do, everywhere;
    // deleting a collection takes its items with it.
    app_a.add_to_collection(list, item, "again");
    const auto other = app_a.create_collection("Reading list", std::nullopt);  // same name
    app_a.add_to_collection(other, item, std::nullopt);
    sync_until_quiet({&a, &b});
    CHECK(count(b, "SELECT count(*) FROM collections") == 2);
    CHECK(count(b, "SELECT count(*) FROM collection_items") == 2);
    app_b.delete_collection(count(b, "SELECT max(id) FROM collections"));
    app_b.delete_item(count(b, "SELECT id FROM items"));
    sync_until_quiet({&a, &b});
    for (auto* r : {&a, &b}) {
        INFO(r->path());
        CHECK(count(*r, "SELECT count(*) FROM collections") == 1);
        CHECK(count(*r, "SELECT count(*) FROM collection_items") == 0);
        CHECK(count(*r, "SELECT count(*) FROM item_media") == 0);
        CHECK(count(*r, "SELECT count(*) FROM syndications") == 0);
        require_converged(*r);
    }
    CHECK(pg_int(up, "SELECT count(*) FROM lestash.item_media") == 0);
}

TEST_CASE_METHOD(TwoReplicas,
                 "the same profile and syndication made on two replicas become one row each",
                 "[sync][user-data][identity]") {
    AppWriter app_a(a.path()), app_b(b.path());
    app_a.upsert_item(paper("2401.00002", "same paper"));
    app_b.upsert_item(paper("2401.00002", "same paper"));
    sync_until_quiet({&a, &b});
    // Each replica records the same post and the same profile on its own.
    app_a.record_syndication(id_of(a, "2401.00002"), "bluesky", "at://post/2", "from a");
    app_b.record_syndication(id_of(b, "2401.00002"), "bluesky", "at://post/2", "from b");
    app_a.upsert_profile("urn:li:person:same", "From A");
    app_b.upsert_profile("urn:li:person:same", "From B");
    sync_until_quiet({&a, &b});
    CHECK(pg_int(up, "SELECT count(*) FROM lestash.syndications") == 1);
    CHECK(pg_int(up, "SELECT count(*) FROM lestash.person_profiles") == 1);
    // Postgres names a psql writer's row the same way (natural_row_id).
    CHECK(pg_int(up,
                 "SELECT count(*) FROM lestash.person_profiles p WHERE p.id = "
                 "lestash.natural_row_id('person_profiles', to_jsonb(p))") == 1);
    CHECK(pg_int(up,
                 "SELECT count(*) FROM lestash.syndications s WHERE s.id = "
                 "lestash.natural_row_id('syndications', to_jsonb(s))") == 1);
    for (auto* r : {&a, &b}) {
        CHECK(count(*r, "SELECT count(*) FROM syndications") == 1);
        require_converged(*r);
    }
    CHECK(one_text(a.replica().db(), "SELECT display_name FROM person_profiles") ==
          one_text(b.replica().db(), "SELECT display_name FROM person_profiles"));
}

TEST_CASE_METHOD(TwoReplicas,
                 "a deleted parent clears its soft references everywhere, and a re-import on "
                 "another device links the same way on all",
                 "[sync][soft-references]") {
    AppWriter app_a(a.path()), app_b(b.path());
    // A new parent and its new child go in one push: the child's reference holds.
    const auto parent_a = app_a.upsert_item(paper("2401.99999", "v1 of the paper"));
    ItemFields child = paper("notes-a", "notes on the paper, written on A");
    child.parent_id = parent_a;
    app_a.upsert_item(child);
    sync_until_quiet({&a, &b});
    CHECK(pg_int(up,
                 "SELECT count(*) FROM lestash.items c JOIN lestash.items p ON p.id = c.parent_id "
                 "WHERE c.source_id = 'notes-a' AND p.source_id = '2401.99999'") == 1);
    ItemFields child_b = paper("notes-b", "notes written on B");
    child_b.parent_id = id_of(b, "2401.99999");
    app_b.upsert_item(child_b);
    // A history row remembering the parent (parent_id_old).
    app_b.db().exec(
        "UPDATE items SET parent_id = NULL, content = 'unlinked' WHERE source_id = "
        "'notes-a'");
    app_b.db().exec("UPDATE items SET parent_id = " + std::to_string(id_of(b, "2401.99999")) +
                    " WHERE source_id = 'notes-a'");
    sync_until_quiet({&a, &b});
    CHECK(count(a, "SELECT count(*) FROM item_history WHERE parent_id_old IS NOT NULL") >= 1);

    // A deletes the parent; the app leaves its children's parent_id as it was.
    app_a.delete_item(id_of(a, "2401.99999"));
    CHECK(count(a, "SELECT count(*) FROM items WHERE parent_id IS NOT NULL") == 2);
    sync_until_quiet({&a, &b});
    for (auto* r : {&a, &b}) {
        INFO(r->path());
        CHECK(count(*r, "SELECT count(*) FROM items WHERE parent_id IS NOT NULL") == 0);
        CHECK(count(*r, "SELECT count(*) FROM item_history WHERE parent_id_old IS NOT NULL") == 0);
        require_converged(*r);
    }
    CHECK(pg_int(up, "SELECT count(*) FROM lestash.items WHERE parent_id IS NOT NULL") == 0);

    // B saves the same paper again (same natural key, same UUID) and links
    // both children to it; A links a child too, before it has pulled.
    const auto again = app_b.upsert_item(paper("2401.99999", "v2 of the paper"));
    app_b.db().exec("UPDATE items SET parent_id = " + std::to_string(again) +
                    " WHERE source_id LIKE 'notes-%'");
    sync_until_quiet({&a, &b});
    for (auto* r : {&a, &b}) {
        INFO(r->path());
        CHECK(count(*r,
                    "SELECT count(*) FROM items c JOIN items p ON p.id = c.parent_id WHERE "
                    "p.source_id = '2401.99999'") == 2);
        require_converged(*r);
    }

    // A push racing a delete: B links to an item A deleted and pushed first.
    app_a.upsert_item(paper("2401.88888", "short-lived"));
    sync_until_quiet({&a, &b});
    app_a.delete_item(id_of(a, "2401.88888"));
    a.sync();
    app_b.db().exec("UPDATE items SET parent_id = " + std::to_string(id_of(b, "2401.88888")) +
                    " WHERE source_id = 'notes-b'");
    sync_until_quiet({&a, &b});
    CHECK(pg_int(up,
                 "SELECT count(*) FROM lestash.items WHERE source_id = 'notes-b' AND "
                 "parent_id IS NULL") == 1);
    for (auto* r : {&a, &b}) {
        INFO(r->path());
        CHECK(count(*r,
                    "SELECT count(*) FROM items WHERE source_id = 'notes-b' AND parent_id "
                    "IS NULL") == 1);
        require_converged(*r);
    }

    // verify reports a replica whose soft reference disagrees.
    {
        ApplyScope tamper(b.replica().db());
        b.replica().db().exec("UPDATE items SET parent_id = 987654 WHERE source_id = 'notes-b'");
        tamper.commit();
    }
    const auto report = b.engine().verify(false);
    CHECK_FALSE(report.matches());
    CHECK(report.tables.front().table == "items");
    CHECK(report.tables.front().different.size() == 1);
    CHECK(a.engine().verify(false).matches());
}

TEST_CASE_METHOD(TwoReplicas, "verify --repair pushes a value Postgres never had, never loses it",
                 "[sync][verify][repair]") {
    AppWriter app_a(a.path());
    for (int i = 0; i < 5; ++i)
        app_a.upsert_item(paper("r" + std::to_string(i), "content " + std::to_string(i)));
    app_a.create_collection("list", std::nullopt);
    sync_until_quiet({&a, &b});

    // A value written while the capture triggers did not see it (as with
    // the stale triggers of an app upgrade), and one Postgres changed.
    {
        ApplyScope unseen(a.replica().db());
        a.replica().db().exec("UPDATE items SET title = 'only on A' WHERE source_id = 'r1'");
        a.replica().db().exec("UPDATE collections SET description = 'kept'");
        unseen.commit();
    }
    shared_postgres().exec(
        "UPDATE lestash.items SET title = 'newer upstream' WHERE source_id = 'r2'", up.name);
    CHECK(a.replica().outbox().depth() == 0);
    const auto before = a.engine().verify(false);
    CHECK_FALSE(before.matches());

    const auto repaired = a.engine().verify(true);
    const auto& items = repaired.tables.front();
    REQUIRE(items.table == "items");
    CHECK(items.pushed == 1);
    CHECK(items.fetched <= 1);  // r2 may have arrived through the pull already
    CHECK(one_text(a.replica().db(), "SELECT title FROM items WHERE source_id = 'r1'") ==
          "only on A");
    CHECK(one_text(a.replica().db(), "SELECT description FROM collections") == "kept");
    sync_until_quiet({&a, &b});
    CHECK(one_text(a.replica().db(), "SELECT title FROM items WHERE source_id = 'r2'") ==
          "newer upstream");
    CHECK(one_text(b.replica().db(), "SELECT title FROM items WHERE source_id = 'r1'") ==
          "only on A");
    CHECK(one_text(b.replica().db(), "SELECT description FROM collections") == "kept");
    CHECK(a.engine().verify(false).matches());
    CHECK(b.engine().verify(false).matches());
}

TEST_CASE("the app's v1 -> v11 upgrade under two running daemons loses nothing",
          "[daemon][upgrade]") {
    using namespace std::chrono_literals;
    TempDir dir;
    const auto up = fresh_upstream();
    const auto a = dir.file("a.db"), b = dir.file("b.db");
    create_lestash_db(a, 1);
    create_lestash_db(b, 1);
    const auto args = [&](const std::string& name) {
        return std::vector<std::string>{"--db",        dir.file(name + ".db"),
                                        "--postgres",  up.daemon_conninfo,
                                        "--socket",    dir.file(name + ".sock"),
                                        "--replica",   name,
                                        "--log-level", "debug"};
    };
    DaemonProcess da(args("a"), dir.file("a.log")), db(args("b"), dir.file("b.log"));
    INFO("a.log:\n" << da.log() << "\nb.log:\n" << db.log());
    const auto started = [](DaemonProcess& d) {
        return eventually([&] { return d.log().find("sync (start)") != std::string::npos; });
    };
    REQUIRE(started(da));
    REQUIRE(started(db));
    CHECK(da.log().find("table collections is not in") != std::string::npos);

    // A user whose command failed with "database is locked" (the app's
    // deferred transaction lost a race with a daemon commit: SQLite's
    // SQLITE_BUSY_SNAPSHOT, which the busy timeout does not cover) runs it again.
    const auto as_user = [](const std::function<void()>& write) {
        for (int attempt = 1;; ++attempt) {
            try {
                return write();
            } catch (const std::exception& e) {
                if (attempt == 10 ||
                    std::string(e.what()).find("database is locked") == std::string::npos)
                    throw;
                std::this_thread::sleep_for(100ms);
            }
        }
    };
    // Writes before: items on both, at v1.
    as_user([&] {
        AppWriter wa(a), wb(b);
        wa.upsert_item(paper("p-parent", "the parent"));
        wa.upsert_item(paper("p-child", "the child"));
        wb.upsert_item(paper("p-other", "from b"));
        wa.add_tag(1, "physics");
    });
    // A upgrades while both daemons run, writing between the steps.
    upgrade_app_schema(a, 1, 11, [&](int step) {
        as_user([&] {
            AppWriter w(a);
            if (step == 5)  // parent_id exists: link the child right away
                w.db().exec(
                    "UPDATE items SET parent_id = (SELECT id FROM items WHERE source_id = "
                    "'p-parent') WHERE source_id = 'p-child'");
            if (step == 6) {
                const auto list = w.create_collection("after step 6", "made mid-upgrade");
                w.add_to_collection(list, 1, "first");
            }
            if (step == 7)
                w.add_media(1, "image", std::nullopt, "1/aaaaaaaaaaaa.png");
            if (step == 10)
                w.db().exec("UPDATE tags SET kind = 'topic' WHERE name = 'physics'");
        });
    });
    // Writes during B's upgrade, from A (now v11) and B.
    upgrade_app_schema(b, 1, 11, [&](int step) {
        as_user([&] {
            if (step == 4) {
                AppWriter w(a);
                w.record_syndication(1, "bluesky", "at://up/1", std::nullopt);
            }
            if (step == 9) {
                AppWriter w(b);
                w.upsert_item(paper("p-b-during", "b during its upgrade"));
            }
        });
    });
    // Writes after, on both; B links its item to A's once it has it.
    const auto has = [](const std::string& path, const std::string& sql) {
        sqlite::Connection c(path, SQLITE_OPEN_READONLY);
        c.exec("PRAGMA busy_timeout = 5000");
        return c.query_int(sql) > 0;
    };
    REQUIRE(eventually(
        [&] { return has(b, "SELECT count(*) FROM items WHERE source_id = 'p-parent'"); }));
    as_user([&] {
        AppWriter wa(a), wb(b);
        wb.upsert_profile("urn:li:person:after", "After");
        wb.db().exec(
            "UPDATE items SET parent_id = (SELECT id FROM items WHERE source_id = "
            "'p-parent') WHERE source_id = 'p-other'");
        wa.upsert_item(paper("p-last", "the last write"));
    });
    const std::string everything =
        "SELECT (SELECT count(*) FROM items WHERE source_id = 'p-last') + (SELECT count(*) FROM "
        "items WHERE source_id = 'p-b-during') + (SELECT count(*) FROM person_profiles) + "
        "(SELECT count(*) FROM items c JOIN items p ON p.id = c.parent_id WHERE p.source_id = "
        "'p-parent') + (SELECT count(*) FROM tags WHERE kind = 'topic') + (SELECT count(*) FROM "
        "collection_items WHERE note = 'first') + (SELECT count(*) FROM item_media) + (SELECT "
        "count(*) FROM syndications) = 9";
    const bool arrived = eventually([&] { return has(a, everything) && has(b, everything); }, 120s);
    if (!arrived) {
        for (const auto& [path, d] : {std::pair{a, &da}, std::pair{b, &db}}) {
            sqlite::Connection c(path, SQLITE_OPEN_READONLY);
            UNSCOPED_INFO(
                path
                << ": "
                << c.query_text(
                        "SELECT (SELECT count(*) FROM items WHERE source_id = "
                        "'p-last') || ',' || (SELECT count(*) FROM "
                        "items WHERE source_id = 'p-b-during') || ',' || (SELECT "
                        "count(*) FROM person_profiles) || ',' || "
                        "(SELECT count(*) FROM items c JOIN items p ON p.id = "
                        "c.parent_id WHERE p.source_id = "
                        "'p-parent') || ',' || (SELECT count(*) FROM tags WHERE kind "
                        "= 'topic') || ',' || (SELECT count(*) FROM "
                        "collection_items WHERE note = 'first') || ',' || (SELECT "
                        "count(*) FROM item_media) || ',' || (SELECT "
                        "count(*) FROM syndications) || ' outbox ' || (SELECT "
                        "count(*) FROM _lestash_sync_outbox) || ' parents ' || (SELECT "
                        "group_concat(source_id || ':' || coalesce(parent_id, '-')) FROM items)")
                       .value_or("?")
                << "\n"
                << d->log().substr(d->log().size() > 6000 ? d->log().size() - 6000 : 0));
        }
    }
    CHECK(arrived);
    CHECK(eventually([&] {
        return pg_int(up, "SELECT count(*) FROM lestash.items WHERE parent_id IS NOT NULL") == 2;
    }));
    CHECK(da.stop(SIGTERM) == 0);
    CHECK(db.stop(SIGTERM) == 0);
    for (const auto& path : {a, b}) {
        TestReplica r(path, up.daemon_conninfo);
        INFO(path);
        require_converged(r);
        CHECK(r.engine().verify(false).matches());
        CHECK(r.replica().waiting_tables().empty());
        CHECK(r.replica().unsynced_tables().empty());  // post_cache is known: it stays local
    }
}

}  // namespace lestash::test
