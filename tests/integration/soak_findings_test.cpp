// Interleavings the soak (tests/soak) exercises, each pinned down as a deterministic test.
#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "app_writer.hpp"
#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

std::int64_t pg_count(const std::string& conninfo, const std::string& sql) {
    pqxx::connection c(conninfo);
    pqxx::read_transaction t(c);
    return t.exec1(sql)[0].as<std::int64_t>();
}

}  // namespace

// Le Stash's tables have INTEGER PRIMARY KEY without AUTOINCREMENT: SQLite
// hands the rowid of a deleted last row to the next insert. When the app
// inserts and deletes a note while the daemon pulls, the pulled row can get
// that rowid while the outbox still names it.
TEST_CASE_METHOD(TwoReplicas,
                 "a pulled row that reuses the rowid of an unpushed, deleted local row stays right",
                 "[sync][rowid-reuse]") {
    a.sync();
    b.sync();
    AppWriter app(a.path());
    ItemFields kept;
    kept.title = "kept";
    kept.content = "kept";
    app.insert_item(kept);
    a.sync();

    shared_postgres().exec(
        "INSERT INTO lestash.items (id, source_type, source_id, title, content) VALUES "
        "(gen_random_uuid(), 'psql', 'remote-1', 'remote-1', 'from psql')",
        up.name);
    ItemFields gone;
    gone.title = "gone";
    gone.content = "short-lived";
    const auto gone_id = app.insert_item(gone);
    app.delete_item(gone_id);
    // The pull of this cycle runs before the push of the app's two writes.
    a.engine().pull_all();
    INFO("the remote row took rowid " << gone_id);
    CHECK(a.replica().db().query_int("SELECT id FROM items WHERE title = 'remote-1'") == gone_id);

    // Elsewhere the remote row changes, then a pushes its outbox.
    shared_postgres().exec(
        "UPDATE lestash.items SET content = 'edited in psql' WHERE title = "
        "'remote-1'",
        up.name);
    a.sync();
    b.sync();
    a.sync();
    CHECK(pg_count(up.admin_conninfo,
                   "SELECT count(*) FROM lestash.items WHERE title = "
                   "'remote-1' AND content = 'edited in psql'") == 1);
    CHECK(pg_count(up.admin_conninfo, "SELECT count(*) FROM lestash.items WHERE title = 'gone'") ==
          0);

    // And a delete of it reaches a.
    shared_postgres().exec("DELETE FROM lestash.items WHERE title = 'remote-1'", up.name);
    a.sync();
    b.sync();
    CHECK(a.replica().db().query_int("SELECT count(*) FROM items WHERE title = 'remote-1'") == 0);
    require_converged(a);
    require_converged(b);
}

// The soak's crash loop diverged once the upstream's transaction ids went
// from 999 to 1000 (and 9999 to 10000): the pull ordered the change log by
// its xid column selected as text, so a batch that hit its limit across the
// boundary took "1000".."1039" before "960".."999" and its cursor skipped
// the rest. Batches of 40 over 150 transactions that straddle a digit
// boundary must still bring every row.
TEST_CASE("a pull that crosses a digit boundary of transaction ids misses no change",
          "[sync][xid-order]") {
    // A server of its own: a fresh cluster's ids start below 1000, so the
    // boundary is near whatever ran before.
    ThrowawayPostgres server;
    const auto up = fresh_upstream(server);
    TempDir dir;
    SyncOptions options;
    options.pull_batch = 40;
    TestReplica a(dir.file("a.db"), up.daemon_conninfo, 11, options);
    a.sync();

    pqxx::connection admin(up.admin_conninfo);
    const auto next_xid = [&] {
        pqxx::work t(admin);
        const auto xid = t.exec1("SELECT pg_current_xact_id()::text::bigint")[0].as<std::int64_t>();
        t.commit();
        return xid;
    };
    constexpr std::int64_t kWrites = 150;
    std::int64_t boundary = 10;
    while (boundary < next_xid() + kWrites) boundary *= 10;
    // Each subtransaction that writes takes an id of its own.
    const std::int64_t burn = boundary - kWrites / 2 - next_xid();
    {
        pqxx::work t(admin);
        t.exec("CREATE TEMP TABLE burn (n int)");
        t.exec("DO $$ BEGIN FOR i IN 1.." + std::to_string(burn) +
               " LOOP BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN OTHERS THEN NULL; END; "
               "END LOOP; END $$");
        t.commit();
    }
    const auto first = next_xid();
    for (std::int64_t i = 0; i < kWrites; ++i) {
        pqxx::work t(admin);
        t.exec(
            "INSERT INTO lestash.items (id, source_type, source_id, title, content) VALUES "
            "(gen_random_uuid(), 'psql', 'boundary-" +
            std::to_string(i) + "', 'boundary " + std::to_string(i) + "', 'from psql')");
        t.commit();
    }
    const auto last = next_xid();
    INFO("the writes took transaction ids " << first << " to " << last << " around " << boundary);
    REQUIRE(first < boundary);
    REQUIRE(last > boundary);

    a.sync();
    CHECK(a.replica().db().query_int("SELECT count(*) FROM items WHERE source_type = 'psql'") ==
          kWrites);
    require_converged(a);
}

}  // namespace lestash::test
