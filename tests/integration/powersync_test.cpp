// What the phone needs from the upstream schema (migration 005, docs/mobile.md),
// checked against a real Postgres: the publication is exactly the synced
// tables, the service's role reads them and nothing else, the server runs
// with logical WAL, the sync config and the generated Dart schema follow the
// upstream tables, and the id test vectors hold in Postgres. The service
// itself runs in tests/powersync/phone_e2e_test.cpp.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>

#include "lestash_sync/replica/table_spec.hpp"
#include "lestash_sync/upstream/upstream.hpp"
#include "powersync_rig.hpp"
#include "sync_fixture.hpp"
#include "temp_dir.hpp"

namespace lestash::test {
namespace {

using nlohmann::json;

std::set<std::string> synced_table_names() {
    std::set<std::string> names;
    for (const auto& spec : default_table_specs()) names.insert(spec.name);
    return names;
}

std::set<std::string> published_tables(pqxx::connection& conn) {
    pqxx::nontransaction q(conn);
    std::set<std::string> out;
    for (const auto& r : q.exec("SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                                "WHERE pubname = 'powersync'"))
        out.insert(r[0].as<std::string>());
    return out;
}

std::set<std::string> qualified(const std::set<std::string>& names) {
    std::set<std::string> out;
    for (const auto& n : names) out.insert("lestash." + n);
    return out;
}

std::string source_file(const std::string& relative) {
    return std::string(LESTASH_SOURCE_DIR) + "/" + relative;
}

}  // namespace

TEST_CASE("the publication powersync lists exactly the synced tables, and stays so",
          "[powersync]") {
    const auto up = fresh_upstream();
    pqxx::connection conn(up.admin_conninfo);
    CHECK(published_tables(conn) == qualified(synced_table_names()));
    {
        pqxx::nontransaction q(conn);
        CHECK_FALSE(
            q.exec1("SELECT puballtables FROM pg_publication WHERE pubname = 'powersync'")[0]
                .as<bool>());
    }

    // Applied again (every `lestash-syncd migrate` does), it puts back a
    // table someone dropped and takes out nothing someone added.
    {
        pqxx::nontransaction q(conn);
        q.exec("ALTER PUBLICATION powersync DROP TABLE lestash.tags");
        q.exec("CREATE TABLE lestash.made_synced_later (id uuid PRIMARY KEY)");
        q.exec("ALTER PUBLICATION powersync ADD TABLE lestash.made_synced_later");
    }
    apply_migrations(up.admin_conninfo);
    auto expected = qualified(synced_table_names());
    expected.insert("lestash.made_synced_later");
    CHECK(published_tables(conn) == expected);
}

TEST_CASE("a FOR ALL TABLES publication named powersync is refused, saying what to do",
          "[powersync]") {
    const auto up = fresh_upstream();
    pqxx::connection conn(up.admin_conninfo);
    pqxx::nontransaction(conn).exec(
        "DROP PUBLICATION powersync; CREATE PUBLICATION powersync FOR ALL TABLES");
    try {
        apply_migrations(up.admin_conninfo);
        FAIL("the migrations accepted a publication that streams the change log");
    } catch (const std::exception& e) {
        const std::string message = e.what();
        CHECK(message.find("FOR ALL TABLES") != std::string::npos);
        CHECK(message.find("005_powersync.sql") != std::string::npos);
    }
}

TEST_CASE("the service's role reads the synced tables and nothing else", "[powersync]") {
    const auto up = fresh_upstream();
    pqxx::connection conn(up.admin_conninfo);
    pqxx::nontransaction q(conn);
    CHECK_FALSE(q.exec1("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'lestash_powersync'")[0]
                    .as<bool>());
    CHECK(q.exec1("SELECT has_schema_privilege('lestash_powersync', 'lestash', 'USAGE')")[0]
              .as<bool>());
    for (const auto& table : synced_table_names()) {
        INFO("lestash." << table);
        const auto privilege = [&](const std::string& p) {
            return q
                .exec_params1("SELECT has_table_privilege('lestash_powersync', $1, $2)",
                              "lestash." + table, p)[0]
                .as<bool>();
        };
        CHECK(privilege("SELECT"));
        for (const char* p : {"INSERT", "UPDATE", "DELETE", "TRUNCATE"}) CHECK_FALSE(privilege(p));
    }
    for (const char* other : {"lestash.change_log", "lestash.replicas", "lestash.conflicts"}) {
        INFO(other);
        CHECK_FALSE(q.exec_params1("SELECT has_table_privilege('lestash_powersync', $1, 'SELECT')",
                                   other)[0]
                        .as<bool>());
    }

    // The login role a service uses, as docs/mobile.md creates it, reads them.
    auto& server = shared_postgres();
    const auto db = prepare_powersync_database(server, up.name);
    pqxx::connection service(server.conninfo_as(db.user, db.password, up.name));
    pqxx::nontransaction s(service);
    for (const auto& table : synced_table_names())
        CHECK_NOTHROW(s.exec("SELECT count(*) FROM lestash." + table));
    CHECK_THROWS_AS(s.exec("SELECT count(*) FROM lestash.change_log"),
                    pqxx::insufficient_privilege);
}

TEST_CASE("the private Postgres runs with what PowerSync's service needs", "[powersync]") {
    pqxx::connection conn(fresh_upstream().admin_conninfo);
    pqxx::nontransaction q(conn);
    CHECK(q.exec1("SHOW wal_level")[0].as<std::string>() == "logical");
    CHECK(q.exec1("SELECT current_setting('max_replication_slots')::int")[0].as<int>() >= 4);
    CHECK(q.exec1("SELECT current_setting('max_wal_senders')::int")[0].as<int>() >= 4);
    // -1 (the default) lets an abandoned slot keep WAL without limit.
    CHECK(
        q.exec1("SELECT setting::bigint FROM pg_settings WHERE name = 'max_slot_wal_keep_size'")[0]
            .as<std::int64_t>() > 0);
}

TEST_CASE("the sync config names every synced table and column", "[powersync]") {
    const auto up = fresh_upstream();
    Upstream upstream(up.admin_conninfo);
    const auto names = synced_table_names();
    const auto schema = upstream.read_schema({names.begin(), names.end()});
    const auto config = read_sync_config(project_sync_config());

    std::set<std::string> in_config;
    for (const auto& q : config) in_config.insert(q.table);
    CHECK(in_config == synced_table_names());
    CHECK(in_config.size() == config.size());  // one query per table

    for (const auto& q : config) {
        INFO("lestash." << q.table << " in config/powersync/sync-config.yaml");
        const auto it = schema.find(q.table);
        REQUIRE(it != schema.end());
        // id, every data column in the table's order, then _rev; no other bookkeeping.
        std::vector<std::string> expected{"id"};
        for (const auto& c : it->second.columns) expected.push_back(c.name);
        expected.push_back("_rev");
        CHECK(q.columns == expected);
    }
}

TEST_CASE("the checked-in Dart schema is what scripts/powersync-dart-schema prints",
          "[powersync]") {
    const auto up = fresh_upstream();
    const auto generated = run_command(source_file("scripts/powersync-dart-schema") +
                                       " --postgres '" + up.admin_conninfo + "'");
    INFO(generated.output);
    REQUIRE(generated.status == 0);
    CHECK(generated.output == read_file(source_file("config/powersync/lestash_schema.dart")));

    // A sync config naming a column the upstream schema lacks is refused, clearly.
    TempDir dir;
    const std::string bad = dir.file("sync-config.yaml");
    std::ofstream(bad) << "streams:\n  s:\n    queries:\n"
                          "      - SELECT id, no_such_column FROM lestash.items\n";
    const auto refused =
        run_command(source_file("scripts/powersync-dart-schema") + " --sync-config " + bad +
                    " --postgres '" + up.admin_conninfo + "'");
    CHECK(refused.status == 1);
    CHECK(refused.output.find("lestash.items.no_such_column, which the upstream database does "
                              "not have") != std::string::npos);
}

TEST_CASE("the id test vectors hold in Postgres: natural_row_id and other writers' inserts",
          "[powersync]") {
    const auto up = fresh_upstream();
    const auto vectors = json::parse(read_file(source_file("config/powersync/id-vectors.json")));
    pqxx::connection conn(up.admin_conninfo);
    pqxx::nontransaction q(conn);
    const auto text_of = [&](const std::string& sql, const auto&... params) {
        return q.exec_params1(sql, params...)[0].template as<std::string>();
    };
    REQUIRE(vectors["names"].size() >= 3);
    for (const auto& v : vectors["names"]) {
        INFO("name " << v["name"].dump());
        CHECK(text_of("SELECT lestash.name_based_uuid($1)::text", v["name"].get<std::string>()) ==
              v["uuid"].get<std::string>());
    }
    std::set<std::string> tables;
    int named_from_bytes = 0;
    for (const auto& v : vectors["rows"]) {
        INFO("row " << v.dump());
        const auto& uuid = v["uuid"].get<std::string>();
        const std::string table = v["table"].get<std::string>();
        tables.insert(table);
        // A name that is not text (a NUL, invalid UTF-8) is given as hex.
        if (v.contains("name_hex")) {
            ++named_from_bytes;
            CHECK(text_of("SELECT lestash.name_based_uuid_bytes(decode($1, 'hex'))::text",
                          v["name_hex"].get<std::string>()) == uuid);
        } else {
            CHECK(text_of("SELECT lestash.name_based_uuid($1)::text",
                          v["name"].get<std::string>()) == uuid);
        }

        // The row as a daemon pushes it: text and UUIDs typed, any other
        // storage class (and text Postgres cannot hold) in _sqlite.
        json typed = json::object(), overrides = json::object();
        std::string record, columns, values;
        for (const auto& [column, value] : v["key"].items()) {
            const auto cls = value[0].get<std::string>();
            const bool plain = cls == "text" || cls == "uuid";
            typed[column] = plain ? value[1] : json(nullptr);
            if (!plain)
                overrides[column] = value;
            record += std::string(record.empty() ? "" : ", ") + column +
                      (cls == "uuid" ? " uuid" : " text");
            columns += ", " + column;
            values += ", r." + column;
        }
        json row = typed;
        row["_sqlite"] = overrides;
        // The one function that names such rows (the phone's upload endpoint calls it).
        CHECK(text_of("SELECT lestash.natural_row_id($1, $2::jsonb)::text", table, row.dump()) ==
              uuid);

        // Inserted by another writer (no lestash.origin), with a random id:
        // the canonical_row_id trigger gives the row the vector's id. Rows
        // pointed at come first in the file; a collection has a random id,
        // made here.
        if (table == "items") {
            columns += ", content";
            values += ", 'x'";
        }
        if (table == "collection_items")
            q.exec_params(
                "INSERT INTO lestash.collections (id, name) VALUES ($1::uuid, 'list') "
                "ON CONFLICT DO NOTHING",
                v["key"]["collection_id"][1].get<std::string>());
        const auto stored =
            text_of("INSERT INTO lestash." + table + " (id" + columns +
                        ", _sqlite) SELECT gen_random_uuid()" + values +
                        ", nullif($2::jsonb, '{}') FROM jsonb_to_record($1::jsonb) AS r(" + record +
                        ") RETURNING id::text",
                    typed.dump(), overrides.dump());
        CHECK(stored == uuid);
    }
    CHECK(named_from_bytes >= 2);
    // Every natural-key table and every link table has vectors.
    CHECK(tables == std::set<std::string>{"items", "tags", "sources", "item_tags",
                                          "person_profiles", "syndications", "collection_items"});
    // Tables whose rows have random ids are named by nobody.
    for (const char* random : {"collections", "item_media", "item_history", "sync_log"})
        CHECK(q.exec_params1("SELECT lestash.natural_row_id($1, '{}') IS NULL", random)[0]
                  .as<bool>());
    CHECK(
        q.exec1("SELECT lestash.natural_row_id('items', '{\"source_type\": \"note\"}') IS NULL")[0]
            .as<bool>());
}

}  // namespace lestash::test
