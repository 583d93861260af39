// The phone, end to end, with real components only (CTest phone-e2e, label
// powersync): a private Postgres with logical WAL and the project's
// migrations; two real lestash-syncd daemons on Le Stash v11 databases that
// an app-like writer changes as the CLI does; the PowerSync service with the
// project's own config/powersync/*.yaml; a phone running PowerSync's client
// core with the schema scripts/powersync-dart-schema generates. Run by
// run_e2e.sh, which builds the service and installs the client first.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "fault_proxy.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "powersync_rig.hpp"
#include "sync_fixture.hpp"
#include "temp_dir.hpp"
#include "throwaway_postgres.hpp"

namespace lestash::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

PowerSyncTools tools() {
    const char* dir = std::getenv("LESTASH_POWERSYNC_DIR");
    if (!dir || !*dir)
        throw std::runtime_error(
            "LESTASH_POWERSYNC_DIR is not set: run this through tests/powersync/run_e2e.sh "
            "(ctest -R phone-e2e)");
    return {dir};
}

// Text PowerSync cannot shorten by compressing: pseudo-random words with
// multi-byte characters, so Postgres stores it out of line (TOAST).
std::string incompressible_text(std::size_t bytes) {
    static const char* pieces[] = {"kaf", "lö", "mi",   "ñe",   "sa",
                                   "tör", "vé", "日本", "🦀", "ri"};
    std::mt19937 rng(13);
    std::uniform_int_distribution<int> pick(0, 9), space(0, 5);
    std::string out;
    while (out.size() < bytes) {
        out += pieces[pick(rng)];
        if (space(rng) == 0)
            out += ' ';
    }
    return out;
}

std::int64_t outbox_depth(const std::string& db) {
    sqlite::Connection c(db, SQLITE_OPEN_READONLY);
    return c.query_int("SELECT count(*) FROM _lestash_sync_outbox");
}

std::int64_t local_id(AppWriter& app, const std::string& source_type,
                      const std::string& source_id) {
    sqlite::Statement st(app.db(), "SELECT id FROM items WHERE source_type = ? AND source_id = ?");
    st.bind_all(source_type, source_id);
    REQUIRE(st.step());
    return st.integer(0);
}

// Everything one run needs, torn down in reverse: the phone and the service
// (killed by pid) before the daemons, the daemons before Postgres.
struct Rig {
    TempDir dir;
    ThrowawayPostgres postgres;
    UpstreamDatabase upstream = fresh_upstream(postgres);
    PowerSyncDatabase powersync_db = prepare_powersync_database(postgres, upstream.name);
    std::string a_db = dir.file("a/lestash.db"), b_db = dir.file("b/lestash.db");
    std::unique_ptr<DaemonProcess> a, b;
    std::unique_ptr<PowerSyncService> service;
    std::unique_ptr<EndpointProcess> endpoint;
    std::unique_ptr<FaultProxy> proxy;  // between the phone's uploads and the endpoint
    std::unique_ptr<Phone> phone;
    std::vector<SyncedTable> synced = read_sync_config(project_sync_config());

    Rig() {
        service = std::make_unique<PowerSyncService>(tools(), postgres, powersync_db, dir.path());
        a = start_desktop("a", a_db);
        write_seed();
        wait_pushed(a_db);
        b = start_desktop("b", b_db);
        REQUIRE(eventually([&] { return outbox_depth(b_db) == 0 && b_has_what_postgres_has(); }));
        service->wait_ready();
        endpoint = std::make_unique<EndpointProcess>(postgres, upstream.name, service->jwt_key(),
                                                     service->endpoint(), dir.path());
        proxy = std::make_unique<FaultProxy>("127.0.0.1", endpoint->port(), 16);
        phone = std::make_unique<Phone>(
            tools(), *service, upstream.admin_conninfo, dir.path() / "phone",
            PhoneUploads{"http://127.0.0.1:" + std::to_string(proxy->port()), endpoint->url()});
        phone_device =
            phone
                ->call({{"op", "pair"}, {"code", endpoint->pairing_code("e2e phone")}})["device_id"]
                .get<std::string>();
    }

    std::string phone_device;

    pqxx::result pg(const std::string& sql) {
        pqxx::connection c(upstream.admin_conninfo);
        pqxx::nontransaction q(c);
        return q.exec(sql);
    }
    std::int64_t pg_count(const std::string& sql) { return pg(sql)[0][0].as<std::int64_t>(); }

    // Every local write pushed and every remote one applied, on both desktops.
    void desktops_caught_up() {
        INFO("a:\n" << a->log().substr(a->log().size() > 4000 ? a->log().size() - 4000 : 0));
        const bool caught_up = eventually([&] {
            return outbox_depth(a_db) == 0 && outbox_depth(b_db) == 0 &&
                   b_has_what_postgres_has() && has_what_postgres_has(a_db);
        });
        INFO("outboxes a " << outbox_depth(a_db) << ", b " << outbox_depth(b_db)
                           << "; rows differing from Postgres: a " << rows_differing(a_db) << "; b "
                           << rows_differing(b_db));
        REQUIRE(caught_up);
    }

    // "table: local N, Postgres M" for each synced table whose counts differ.
    std::string rows_differing(const std::string& db) {
        sqlite::Connection local(db, SQLITE_OPEN_READONLY);
        std::string out;
        for (const auto& t : synced) {
            const auto here = local.query_int("SELECT count(*) FROM " + t.table);
            const auto there = pg_count("SELECT count(*) FROM lestash." + t.table);
            if (here != there)
                out += t.table + ": local " + std::to_string(here) + ", Postgres " +
                       std::to_string(there) + " ";
        }
        return out;
    }

    bool has_what_postgres_has(const std::string& db) { return rows_differing(db).empty(); }

    std::unique_ptr<DaemonProcess> start_desktop(const std::string& name, const std::string& db) {
        std::filesystem::create_directories(std::filesystem::path(db).parent_path());
        create_lestash_db(db, 11);
        std::ofstream(dir.file("empty.toml")).flush();  // no user config: flags only
        auto daemon = std::make_unique<DaemonProcess>(
            std::vector<std::string>{"--config", dir.file("empty.toml"), "--db", db, "--postgres",
                                     upstream.daemon_conninfo, "--socket", dir.file(name + ".sock"),
                                     "--replica", "desktop-" + name, "--log-level", "debug"},
            dir.file(name + ".log"));
        INFO("lestash-syncd " << name << ":\n" << daemon->log());
        REQUIRE(
            eventually([&] { return daemon->log().find("sync (start)") != std::string::npos; }));
        return daemon;
    }

    // What a user's Le Stash holds, written on A as the CLI writes it.
    void write_seed() {
        AppWriter app(a_db);
        ItemFields long_note;
        long_note.source_id = "seed-long";
        long_note.title = "Ünïcödé — 日本語 🦀";
        long_note.content = incompressible_text(300 * 1024);
        const auto long_id = app.upsert_item(long_note);

        ItemFields blanks;
        blanks.source_id = "seed-blanks";
        blanks.title = "NULL url, empty author";
        blanks.content = "";
        blanks.author = "";
        blanks.is_own_content = 1;
        blanks.metadata = R"({"likes": 3,   "spaced":  true, "ü": "🦀"})";
        blanks.created_at = "2024-01-01 10:00:00";
        const auto blanks_id = app.upsert_item(blanks);

        ItemFields post;
        post.source_type = "bluesky";
        post.source_id = "at://did:plc:abc/app.bsky.feed.post/3kxyz";
        post.url = "https://bsky.app/profile/me/post/3kxyz";
        post.title = "line\nbreak, tab\t, quotes ' \" and a backslash \\";
        post.content = "a post";
        post.author = "me.bsky.social";
        const auto post_id = app.upsert_item(post);

        ItemFields loose;  // no source_id: a random id, no natural key
        loose.content = "a note without a source id";
        app.insert_item(loose);

        ItemFields reply;
        reply.source_type = "bluesky";
        reply.source_id = "at://did:plc:abc/app.bsky.feed.post/3kreply";
        reply.content = "a reply";
        reply.parent_id = post_id;
        app.upsert_item(reply);

        app.add_tag(long_id, "rust");
        app.add_tag(long_id, "日本語");
        app.add_tag(blanks_id, "rust");
        app.add_tag(post_id, "reading");
        app.update_content(blanks_id, "edited once");  // the app's trigger writes history
        app.upsert_source("bluesky", true, "2024-01-02 03:04:05");
        app.upsert_source("mastodon", false, std::nullopt);
        const auto ok = app.start_sync_log("bluesky");
        app.finish_sync_log(ok, "completed", 3, 1, std::nullopt);
        const auto bad = app.start_sync_log("mastodon");
        app.finish_sync_log(bad, "failed", 0, 0, "timeout ✗");
    }

    void wait_pushed(const std::string& db) {
        INFO("daemon log:\n" << (db == a_db ? a : b)->log());
        REQUIRE(eventually([&] { return outbox_depth(db) == 0; }));
    }

    bool b_has_what_postgres_has() { return has_what_postgres_has(b_db); }

    json upstream_rows() { return postgres_as_the_phone_sees_it(upstream.admin_conninfo, synced); }

    // Waits until the phone holds what Postgres holds; the differences if it never does.
    std::string converge(std::chrono::seconds timeout = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string differences;
        while (std::chrono::steady_clock::now() < deadline) {
            differences = dump_differences(upstream_rows(), phone->dump(synced));
            if (differences.empty())
                return "";
            std::this_thread::sleep_for(200ms);
        }
        return differences;
    }

    json validate(const std::string& sync_config) {
        const auto answer = phone->call({{"op", "http"},
                                         {"path", "/api/admin/v1/validate"},
                                         {"body", {{"sync_rules", sync_config}}}});
        REQUIRE(answer["status"] == 200);
        return answer["body"]["data"];
    }
};

// Made by the first test that needs it; when that fails, the later tests
// fail at once with the same reason instead of trying again.
Rig& rig() {
    static std::unique_ptr<Rig> r;
    static std::string failed;
    if (!failed.empty())
        FAIL("the rig could not be set up: " << failed);
    if (!r) {
        try {
            r = std::make_unique<Rig>();
        } catch (const std::exception& e) {
            failed = e.what();
            throw;
        } catch (...) {  // a failed REQUIRE, reported above
            failed = "see the first test's failure";
            throw;
        }
    }
    return *r;
}

TEST_CASE("the service takes the project's sync config and reports a missing column or table") {
    auto& r = rig();
    INFO("service log:\n" << r.service->log());
    const auto live =
        r.phone->call({{"op", "http"}, {"method", "GET"}, {"path", "/probes/liveness"}});
    CHECK(live["status"] == 200);  // what the compose healthcheck asks

    const std::string config = read_file(project_sync_config());
    const auto ok = r.validate(config);
    INFO("validate: " << ok.dump());
    CHECK(ok["errors"].empty());  // no fatal error and no warning either
    REQUIRE(ok["connections"].size() == 1);
    CHECK(ok["connections"][0]["tables"].size() == r.synced.size());
    for (const auto& t : ok["connections"][0]["tables"]) CHECK(t["errors"].empty());

    // A synced column that does not exist: the service says where.
    const std::string missing = "title, no_such_column, content";
    std::string bad = config;
    const auto at = bad.find("title, content");
    REQUIRE(at != std::string::npos);
    bad.replace(at, std::string("title, content").size(), missing);
    const auto column = r.validate(bad);
    INFO("validate with a missing column: " << column.dump());
    REQUIRE(column["errors"].size() == 1);
    CHECK(column["errors"][0]["message"] == "Column not found.");
    CHECK(column["errors"][0]["location"]["start_offset"] == bad.find("no_such_column"));

    // A table outside the publication (and the role's grants): the change log.
    const auto table = r.validate(config + "      - SELECT id, tbl FROM lestash.change_log\n");
    INFO("validate with the change log: " << table.dump());
    bool not_published = false;
    for (const auto& e : table["errors"])
        not_published |=
            e["level"] == "fatal" &&
            e["message"].get<std::string>().find("is not part of publication") != std::string::npos;
    CHECK(not_published);
}

TEST_CASE("a phone's first sync holds every synced table exactly as Postgres does") {
    auto& r = rig();
    INFO("service log:\n" << r.service->log() << "\nphone log:\n" << r.phone->log());
    const double ms = r.phone->connect();
    INFO("first sync took " << ms << " ms");
    const auto expected = r.upstream_rows();
    const auto phone = r.phone->dump(r.synced);
    CHECK(dump_differences(expected, phone).empty());
    CHECK(expected == phone);
    // The seed is all there, not two empty sets that happen to be equal.
    CHECK(phone["items"].size() == 5);
    CHECK(phone["item_tags"].size() == 4);
    CHECK(phone["item_history"].size() == 1);
    CHECK(phone["sources"].size() == 2);
    CHECK(phone["sync_log"].size() == 2);

    // Byte-exact text and storage classes, checked outright as well.
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT length(CAST(content AS BLOB)) >= 300 * 1024 AND title = ? "
                            "FROM items WHERE source_id = 'seed-long'",
                            {"Ünïcödé — 日本語 🦀"}));
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT url IS NULL AND author = '' AND content = 'edited once' AND "
                            "typeof(is_own_content) = 'integer' AND is_own_content = 1 "
                            "FROM items WHERE source_id = 'seed-blanks'",
                            json::array()));
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT enabled = 0 AND last_sync IS NULL FROM sources WHERE "
                            "source_type = 'mastodon'",
                            json::array()));
}

TEST_CASE("desktop writes reach the phone: inserts, edits, deletes with their cascades, tags") {
    auto& r = rig();
    INFO("service log:\n" << r.service->log() << "\nphone log:\n" << r.phone->log());
    r.phone->connect();
    AppWriter a(r.a_db), b(r.b_db);
    ItemFields fresh;
    fresh.source_id = "from-a";
    fresh.title = "written on desktop A";
    fresh.content = "new ✓";
    const auto fresh_id = a.upsert_item(fresh);
    a.add_tag(fresh_id, "fresh");
    a.add_tag(fresh_id, "rust");
    const auto long_id = local_id(a, "note", "seed-long");
    {
        // The title and a flag, not the 300 KB content: the phone keeps that content.
        sqlite::Statement st(a.db(), "UPDATE items SET title = ?, is_own_content = 1 WHERE id = ?");
        st.bind_all(std::string("retitled on A"), long_id).run();
    }
    a.remove_tag(long_id, "日本語");
    a.delete_item(local_id(a, "note", "seed-blanks"));  // its tag link and history go with it
    a.upsert_source("bluesky", false, "2024-02-01 00:00:00");
    a.finish_sync_log(a.start_sync_log("bluesky"), "completed", 1, 0, std::nullopt);
    // Desktop B tags a post that A wrote.
    b.add_tag(local_id(b, "bluesky", "at://did:plc:abc/app.bsky.feed.post/3kxyz"), "from-b");

    r.wait_pushed(r.a_db);
    r.wait_pushed(r.b_db);
    CHECK(r.converge() == "");

    const auto phone = r.phone->dump(r.synced);
    CHECK(phone["items"].size() == 5);  // one new, one deleted
    CHECK(phone["item_tags"].size() == 5);
    CHECK(phone["item_history"].size() == 1);  // the deleted item's went, the retitle made one
    CHECK_NOTHROW(r.phone->wait_until(
        "SELECT count(*) = 0 FROM items WHERE source_id = 'seed-blanks'", json::array()));
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT count(*) = 2 FROM item_tags it JOIN items i ON i.id = "
                            "it.item_id WHERE i.source_id = 'from-a'",
                            json::array()));
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT count(*) = 1 FROM item_tags it JOIN tags t ON t.id = "
                            "it.tag_id WHERE t.name = 'from-b'",
                            json::array()));
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT title = 'retitled on A' AND is_own_content = 1 AND "
                            "length(content) > 100000 FROM items WHERE source_id = 'seed-long'",
                            json::array()));
}

TEST_CASE("the Dart schema in the repository is what PowerSync's own generator derives") {
    auto& r = rig();
    const auto generated = r.phone->call(
        {{"op", "service_dart_schema"}, {"sync_config", read_file(project_sync_config())}});
    const std::string ours =
        read_file(std::string(LESTASH_SOURCE_DIR) + "/config/powersync/lestash_schema.dart");
    const std::string prefix = "const schema = ";
    const auto at = ours.find(prefix);
    REQUIRE(at != std::string::npos);
    CHECK(ours.substr(at + prefix.size()) == generated["dart"].get<std::string>());
}

TEST_CASE("the id rule written as a phone would reproduces every test vector") {
    auto& r = rig();
    const auto result = r.phone->call(
        {{"op", "check_id_vectors"},
         {"path", std::string(LESTASH_SOURCE_DIR) + "/config/powersync/id-vectors.json"}});
    INFO(result["problems"].dump(2));
    CHECK(result["problems"].empty());
    CHECK(result["checked"] >= 20);
}

// ---- The phone writes (issue 16): through lestash-endpoint ----

std::string fresh_uuid() {
    return random_uuid();
}

std::int64_t local_count(const std::string& db, const std::string& sql,
                         const std::string& param = "") {
    sqlite::Connection c(db, SQLITE_OPEN_READONLY);
    sqlite::Statement st(c, sql);
    if (!param.empty())
        st.bind(1, param);
    REQUIRE(st.step());
    return st.integer(0);
}

json uploads_of(Rig& r) {
    return r.phone->call({{"op", "uploads"}});
}

TEST_CASE(
    "an offline item with three new tags and an edit lands whole on Postgres and both "
    "desktops") {
    auto& r = rig();
    INFO("endpoint log:\n" << r.endpoint->log() << "\nphone log:\n" << r.phone->log());
    r.phone->connect();
    r.phone->call({{"op", "offline"}});
    const std::string item = fresh_uuid(), source_id = "phone-offline-note";
    json statements =
        json::array({json::array({"INSERT INTO items (id, source_type, source_id, title, content, "
                                  "is_own_content) VALUES (?, 'manual', ?, 'On the train', "
                                  "'first draft about zeppelins', 1)",
                                  {item, source_id}})});
    for (const std::string tag : {"phone-travel", "phone-ideas", "phone-draft"}) {
        const std::string tag_id = fresh_uuid();
        statements.push_back(
            json::array({"INSERT INTO tags (id, name) VALUES (?, ?)", {tag_id, tag}}));
        statements.push_back(
            json::array({"INSERT INTO item_tags (id, item_id, tag_id) VALUES "
                         "(?, ?, ?)",
                         {fresh_uuid(), item, tag_id}}));
    }
    statements.push_back(json::array({"UPDATE items SET content = ? WHERE id = ?",
                                      {"second draft about zeppelins and airships", item}}));
    r.phone->call({{"op", "write"}, {"statements", statements}});
    r.phone->call({{"op", "online"}});
    r.phone->call({{"op", "wait_uploaded"}, {"timeout_ms", 60000}});

    const json answer = uploads_of(r)["uploads"].back();
    INFO("the endpoint's answer: " << answer.dump());
    REQUIRE(answer["status"] == 200);
    CHECK(answer["body"]["applied"] == 8);
    // The item and the tags got their name-based ids; the links, theirs.
    CHECK(answer["body"]["replaced_ids"].size() == 7);
    const std::string canonical =
        r.pg("SELECT id FROM lestash.items WHERE source_id = '" + source_id + "'")[0][0].c_str();
    CHECK(canonical != item);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.item_tags it JOIN lestash.tags t ON t.id = "
                     "it.tag_id WHERE it.item_id = '" +
                     canonical + "' AND t.name LIKE 'phone-%'") == 3);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.items WHERE id = '" + canonical +
                     "' AND _origin = '" + r.phone_device + "'") == 1);
    // One history row, as the app's trigger writes for an edit on a desktop.
    CHECK(r.pg_count("SELECT count(*) FROM lestash.item_history WHERE item_id = '" + canonical +
                     "' AND content_old = 'first draft about zeppelins' AND change_reason = "
                     "'phone-edit'") == 1);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.item_history WHERE item_id = '" + canonical +
                     "'") == 1);

    r.desktops_caught_up();
    for (const auto& db : {r.a_db, r.b_db}) {
        INFO("desktop " << db);
        CHECK(local_count(db,
                          "SELECT count(*) FROM items WHERE source_id = ? AND content = "
                          "'second draft about zeppelins and airships' AND "
                          "is_own_content = 1",
                          source_id) == 1);
        CHECK(local_count(db,
                          "SELECT count(*) FROM item_tags it JOIN items i ON i.id = "
                          "it.item_id JOIN tags t ON t.id = it.tag_id WHERE i.source_id = ? "
                          "AND t.name LIKE 'phone-%'",
                          source_id) == 3);
        CHECK(local_count(db,
                          "SELECT count(*) FROM items_fts f JOIN items i ON i.id = f.rowid "
                          "WHERE items_fts MATCH 'airships' AND i.source_id = ?",
                          source_id) == 1);
        CHECK(local_count(db,
                          "SELECT count(*) FROM item_history h JOIN items i ON i.id = "
                          "h.item_id WHERE i.source_id = ?",
                          source_id) == 1);
        CHECK(local_count(db,
                          "SELECT count(*) FROM item_history h JOIN items i ON i.id = "
                          "h.item_id WHERE i.source_id = ? AND h.content_old = 'first draft "
                          "about zeppelins' AND h.change_reason = 'phone-edit'",
                          source_id) == 1);
        sqlite::Connection c(db, SQLITE_OPEN_READWRITE);
        CHECK_NOTHROW(c.exec("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')"));
    }
    // The phone swapped its own rows for the canonical ones.
    CHECK_NOTHROW(r.phone->wait_until(
        "SELECT count(*) = 1 FROM items WHERE id = ? AND source_id = ?", {canonical, source_id}));
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT count(*) = 3 FROM item_tags WHERE item_id = ?", {canonical}));
    CHECK(r.converge() == "");
}

TEST_CASE(
    "a cut answer to a committed upload is retried and applied once, with no false "
    "conflict and no second history row") {
    auto& r = rig();
    INFO("endpoint log:\n" << r.endpoint->log() << "\nphone log:\n" << r.phone->log());
    r.phone->connect();
    const std::string item = fresh_uuid();  // no source_id: the phone's random id stays
    r.phone->call({{"op", "write"},
                   {"statements", json::array({json::array({"INSERT INTO items (id, source_type, "
                                                            "content) VALUES (?, 'manual', "
                                                            "'cut once')",
                                                            {item}})})}});
    r.phone->call({{"op", "wait_uploaded"}, {"timeout_ms", 60000}});
    REQUIRE_NOTHROW(r.phone->wait_until("SELECT _rev IS NOT NULL FROM items WHERE id = ?", {item}));
    const auto cuts_before = r.proxy->stats().cuts;
    const auto conflicts_before = r.pg_count("SELECT count(*) FROM lestash.conflicts");
    const auto uploads_before = uploads_of(r)["uploads"].size();

    r.proxy->cut_responses(1);
    r.phone->call(
        {{"op", "write"},
         {"statements",
          json::array({json::array({"UPDATE items SET content = 'cut twice', title = 'edited' "
                                    "WHERE id = ?",
                                    {item}})})}});
    r.phone->call({{"op", "wait_uploaded"}, {"timeout_ms", 60000}});
    CHECK(r.proxy->stats().cuts == cuts_before + 1);
    const json uploads = uploads_of(r)["uploads"];
    INFO("uploads: " << uploads.dump());
    // The cut attempt threw (no answer), the retry was told it was applied already.
    REQUIRE(uploads.size() == uploads_before + 1);
    CHECK(uploads.back()["body"]["already_applied"] == true);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.phone_transactions WHERE device = '" +
                     r.phone_device +
                     "' AND client_tx = " + uploads.back()["transaction_id"].dump()) == 1);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.conflicts") == conflicts_before);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.item_history WHERE item_id = '" + item + "'") ==
          1);
    r.desktops_caught_up();
    for (const auto& db : {r.a_db, r.b_db})
        CHECK(local_count(db,
                          "SELECT count(*) FROM item_history h JOIN items i ON i.id = "
                          "h.item_id WHERE i.content = 'cut twice' AND h.content_old = "
                          "'cut once'") == 1);
}

TEST_CASE("a poison op in transaction 2 of 5 is a dead letter and 3 to 5 arrive") {
    auto& r = rig();
    INFO("endpoint log:\n" << r.endpoint->log() << "\nphone log:\n" << r.phone->log());
    r.phone->connect();
    r.phone->call({{"op", "offline"}});
    for (int i = 1; i <= 5; ++i) {
        // Transaction 2 is an item without content: Le Stash's items.content is NOT NULL.
        const std::string sql = i == 2 ? "INSERT INTO items (id, source_type, source_id) VALUES "
                                         "(?, 'manual', 'poison')"
                                       : "INSERT INTO items (id, source_type, source_id, content) "
                                         "VALUES (?, 'manual', 'batch-' || ?, 'fine')";
        r.phone->call({{"op", "write"},
                       {"statements",
                        json::array({json::array(
                            {sql, i == 2 ? json::array({fresh_uuid()})
                                         : json::array({fresh_uuid(), std::to_string(i)})})})}});
    }
    r.phone->call({{"op", "online"}});
    r.phone->call({{"op", "wait_uploaded"}, {"timeout_ms", 60000}});
    for (const auto* id : {"batch-1", "batch-3", "batch-4", "batch-5"})
        CHECK(r.pg_count(std::string("SELECT count(*) FROM lestash.items WHERE source_id = '") +
                         id + "'") == 1);
    CHECK(r.pg_count("SELECT count(*) FROM lestash.items WHERE source_id = 'poison'") == 0);
    const auto dead = r.pg(
        "SELECT error, sqlstate, ops::text FROM lestash.phone_dead_letters "
        "WHERE device = '" +
        r.phone_device + "' AND ops::text LIKE '%poison%'");
    REQUIRE(dead.size() == 1);
    CHECK(std::string(dead[0][0].c_str()).find("items_content_not_null") != std::string::npos);
    CHECK(std::string(dead[0][1].c_str()) == "23514");
    // The owner sees it beside the desktops' own, with its reason.
    r.desktops_caught_up();
    const auto shown = run_command(std::string(LESTASH_CLI_PATH) + " --socket " +
                                   r.dir.file("a.sock") + " dead-letters");
    INFO(shown.output);
    CHECK(shown.status == 0);
    CHECK(shown.output.find("items_content_not_null") != std::string::npos);
    CHECK(shown.output.find("e2e phone") != std::string::npos);
    for (const auto* id : {"batch-1", "batch-3", "batch-5"})
        CHECK(local_count(r.b_db, "SELECT count(*) FROM items WHERE source_id = ?", id) == 1);
}

TEST_CASE(
    "phone and desktop editing one column make one conflict; different columns both "
    "survive everywhere") {
    auto& r = rig();
    INFO("endpoint log:\n" << r.endpoint->log() << "\nphone log:\n" << r.phone->log());
    r.phone->connect();
    AppWriter a(r.a_db), b(r.b_db);
    ItemFields shared;
    shared.source_id = "edited-on-both";
    shared.title = "original title";
    shared.content = "original content";
    a.upsert_item(shared);
    r.wait_pushed(r.a_db);
    const std::string id =
        r.pg("SELECT id FROM lestash.items WHERE source_id = 'edited-on-both'")[0][0].c_str();
    REQUIRE_NOTHROW(r.phone->wait_until("SELECT count(*) = 1 FROM items WHERE id = ?", {id}));
    r.desktops_caught_up();

    r.phone->call({{"op", "offline"}});
    r.phone->call(
        {{"op", "write"},
         {"statements",
          json::array({json::array({"UPDATE items SET title = 'title from the phone', author "
                                    "= 'phone author' WHERE id = ?",
                                    {id}})})}});
    {
        const auto local = local_id(a, "note", "edited-on-both");
        sqlite::Statement st(a.db(),
                             "UPDATE items SET title = 'title from desktop A' WHERE id = ?");
        st.bind_all(local).run();
        sqlite::Statement url(b.db(), "UPDATE items SET url = 'https://b.example' WHERE id = ?");
        url.bind_all(local_id(b, "note", "edited-on-both")).run();
    }
    r.wait_pushed(r.a_db);
    r.wait_pushed(r.b_db);
    REQUIRE(eventually([&] {
        return r.pg_count("SELECT count(*) FROM lestash.items WHERE id = '" + id +
                          "' AND title = 'title from desktop A' AND url = "
                          "'https://b.example'") == 1;
    }));
    r.phone->call({{"op", "online"}});
    r.phone->call({{"op", "wait_uploaded"}, {"timeout_ms", 60000}});

    const auto conflicts = r.pg(
        "SELECT column_name, winner_value::text, loser_value::text, "
        "winner_origin::text FROM lestash.conflicts WHERE row_id = '" +
        id + "'");
    REQUIRE(conflicts.size() == 1);
    CHECK(std::string(conflicts[0][0].c_str()) == "title");
    CHECK(std::string(conflicts[0][1].c_str()) == "\"title from the phone\"");
    CHECK(std::string(conflicts[0][2].c_str()) == "\"title from desktop A\"");
    CHECK(std::string(conflicts[0][3].c_str()) == r.phone_device);
    r.desktops_caught_up();
    for (const auto& db : {r.a_db, r.b_db})
        CHECK(local_count(db,
                          "SELECT count(*) FROM items WHERE source_id = ? AND title = 'title "
                          "from the phone' AND author = 'phone author' AND url = "
                          "'https://b.example'",
                          "edited-on-both") == 1);
    CHECK_NOTHROW(
        r.phone->wait_until("SELECT title = 'title from the phone' AND author = 'phone "
                            "author' AND url = 'https://b.example' FROM items WHERE id "
                            "= ?",
                            {id}));
    // Shown by lestash-sync, naming the phone as the winner.
    const auto shown = run_command(std::string(LESTASH_CLI_PATH) + " --socket " +
                                   r.dir.file("b.sock") + " conflicts");
    INFO(shown.output);
    CHECK(shown.output.find("phone: e2e phone") != std::string::npos);
}

TEST_CASE("a revoked phone is refused at once and writes nothing") {
    auto& r = rig();
    INFO("endpoint log:\n" << r.endpoint->log() << "\nphone log:\n" << r.phone->log());
    r.phone->connect();
    const auto revoked = run_command(std::string(LESTASH_ENDPOINT_PATH) + " --config " +
                                     r.endpoint->config_path() + " devices revoke 'e2e phone'");
    INFO(revoked.output);
    REQUIRE(revoked.status == 0);
    const std::string item = fresh_uuid();
    r.phone->call({{"op", "write"},
                   {"statements", json::array({json::array({"INSERT INTO items (id, source_type, "
                                                            "content) VALUES (?, 'manual', "
                                                            "'after revoking')",
                                                            {item}})})}});
    REQUIRE(eventually([&] {
        const auto u = uploads_of(r)["uploads"];
        return !u.empty() && u.back()["status"] == 401;
    }));
    CHECK(r.pg_count("SELECT count(*) FROM lestash.items WHERE content = 'after revoking'") == 0);
}

}  // namespace
}  // namespace lestash::test
