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
TEST_CASE("a pulled row that reuses the rowid of an unpushed, deleted local row stays right",
          "[sync][rowid-reuse]") {
    const auto up = fresh_upstream();
    TempDir dir;
    TestReplica a(dir.file("a.db"), up.daemon_conninfo);
    TestReplica b(dir.file("b.db"), up.daemon_conninfo);
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

}  // namespace lestash::test
