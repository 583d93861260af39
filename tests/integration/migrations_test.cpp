// The upstream migrations as files, applied the way the Docker entrypoint
// applies them: what lestash.make_synced (006) gives a table, and that it
// changes nothing on the six tables 001 and 002 already set up.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <pqxx/pqxx>

#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

// Applies the named files of migrations/postgres, in order, with psql.
void apply(LocalPostgres& pg, const std::string& db, const std::vector<std::string>& files) {
    for (const auto& f : files) {
        const auto r = run_command("psql -X -q -v ON_ERROR_STOP=1 -h " + pg.socket_dir() + " -p " +
                                   std::to_string(pg.port()) + " -U postgres -d " + db + " -f " +
                                   LESTASH_SOURCE_DIR + "/migrations/postgres/" + f);
        INFO(f << ":\n" << r.output);
        REQUIRE(r.status == 0);
    }
}

// Every lestash table's columns (type, nullability, default), triggers and
// grants, one line each: what the sync relies on. The phone's role is left
// out: giving it the synced tables is what 006 adds once 005 made it.
std::vector<std::string> synced_table_setup(const std::string& conninfo) {
    pqxx::connection c(conninfo);
    pqxx::read_transaction tx(c);
    std::vector<std::string> out;
    for (const auto& r : tx.exec(
             "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || "
             "is_nullable || ' ' || coalesce(column_default, '-') FROM information_schema.columns "
             "WHERE table_schema = 'lestash' ORDER BY table_name, ordinal_position"))
        out.push_back(r[0].as<std::string>());
    for (const auto& r : tx.exec(
             "SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON "
             "c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
             "'lestash' AND NOT t.tgisinternal ORDER BY c.relname, t.tgname"))
        out.push_back(r[0].as<std::string>());
    for (const auto& r : tx.exec(
             "SELECT 'grant ' || table_name || ' ' || grantee || ' ' || privilege_type FROM "
             "information_schema.role_table_grants WHERE table_schema = 'lestash' AND grantee <> "
             "'lestash_powersync' ORDER BY 1"))
        out.push_back(r[0].as<std::string>());
    return out;
}

std::int64_t count(pqxx::transaction_base& tx, const std::string& sql) {
    return tx.exec1(sql)[0].as<std::int64_t>();
}

}  // namespace

TEST_CASE("make_synced over the six tables of 001 changes none of their columns, triggers, grants",
          "[migrations]") {
    const std::string kit = "006_synced_table_kit.sql";
    std::vector<std::string> earlier;  // every file before 006, in order
    for (const auto& f : std::filesystem::directory_iterator(std::string(LESTASH_SOURCE_DIR) +
                                                             "/migrations/postgres"))
        if (f.path().extension() == ".sql" && f.path().filename().string() < kit)
            earlier.push_back(f.path().filename().string());
    std::sort(earlier.begin(), earlier.end());
    auto& pg = shared_postgres();
    const auto db = pg.create_database("kit");
    apply(pg, db, earlier);
    const auto expected = synced_table_setup(pg.conninfo(db));
    apply(pg, db, {kit});
    CHECK(synced_table_setup(pg.conninfo(db)) == expected);
    apply(pg, db, {kit});  // again: still nothing
    CHECK(synced_table_setup(pg.conninfo(db)) == expected);
}

TEST_CASE(
    "a new table made synced gets the bookkeeping, the change log, the grants and the "
    "phone's publication",
    "[migrations]") {
    // A server of its own: the role is cluster-wide. The publication and the
    // role come from 005, which fresh_upstream applied.
    ThrowawayPostgres server;
    const auto up = fresh_upstream(server);
    server.exec(
        "CREATE TABLE lestash.media (id uuid PRIMARY KEY, name text); "
        "SELECT lestash.make_synced('lestash.media'); "
        "SELECT lestash.make_synced('lestash.media');",  // twice: idempotent
        up.name);

    pqxx::connection daemon(up.daemon_conninfo);  // the least-privilege role
    {
        pqxx::work tx(daemon);
        tx.exec(
            "SELECT set_config('lestash.origin', '00000000-0000-4000-8000-0000000000aa', true)");
        tx.exec(
            "INSERT INTO lestash.media (id, name) VALUES "
            "('00000000-0000-4000-8000-000000000001', 'photo.jpg')");
        tx.commit();
    }
    const auto rev = [&] {
        pqxx::read_transaction tx(daemon);
        return count(tx, "SELECT _rev FROM lestash.media");
    };
    const auto first_rev = rev();
    {
        pqxx::work tx(daemon);
        tx.exec("UPDATE lestash.media SET name = 'photo.png'");
        tx.commit();
    }
    CHECK(rev() > first_rev);

    pqxx::connection admin(up.admin_conninfo);
    pqxx::read_transaction tx(admin);
    CHECK(count(tx,
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'lestash' "
                "AND table_name = 'media' AND column_name IN ('_rev', '_created', '_origin', "
                "'_col_revs', '_push_base', '_sqlite')") == 6);
    CHECK(tx.exec1("SELECT string_agg(op::text, '' ORDER BY id) FROM lestash.change_log WHERE "
                   "tbl = 'media'")[0]
              .as<std::string>() == "IU");
    CHECK(count(tx,
                "SELECT count(*) FROM lestash.media WHERE _col_revs ? 'name' AND _origin = "
                "'00000000-0000-4000-8000-0000000000aa'") == 1);
    CHECK(count(tx,
                "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'powersync' AND "
                "schemaname = 'lestash' AND tablename = 'media'") == 1);
    CHECK(count(tx,
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'lestash.media'::regclass "
                "AND tgname = 'canonical_row_id'") == 0);
    CHECK(tx.exec1("SELECT has_table_privilege('lestash_powersync', 'lestash.media', 'SELECT')")[0]
              .as<bool>());
    CHECK_FALSE(tx.exec1("SELECT has_function_privilege('lestash_sync', "
                         "'lestash.make_synced(regclass, boolean)', 'EXECUTE')")[0]
                    .as<bool>());
}

}  // namespace lestash::test
