// Replicas wired to a fresh upstream database (see sync_fixture.hpp).
#include "sync_fixture.hpp"

#include <catch2/catch.hpp>

namespace lestash::test {

UpstreamDatabase fresh_upstream() {
    return fresh_upstream(shared_postgres());
}

UpstreamDatabase fresh_upstream(LocalPostgres& pg) {
    UpstreamDatabase db;
    db.name = pg.create_database("sync");
    db.admin_conninfo = pg.conninfo(db.name);
    const std::string dir = std::string(LESTASH_SOURCE_DIR) + "/migrations/postgres";
    const auto applied =
        run_command("for f in " + dir + "/*.sql; do psql -X -q -v ON_ERROR_STOP=1 -h " +
                    pg.socket_dir() + " -p " + std::to_string(pg.port()) + " -U postgres -d " +
                    db.name + " -f \"$f\" || exit 1; done");
    if (applied.status != 0)
        throw std::runtime_error("migrations failed:\n" + applied.output);
    pg.exec(
        "DO $$ BEGIN CREATE ROLE lestash_daemon_test LOGIN PASSWORD 'daemon-pw' IN ROLE "
        "lestash_sync; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    db.daemon_conninfo = pg.conninfo_as("lestash_daemon_test", "daemon-pw", db.name);
    return db;
}

TestReplica::TestReplica(const std::string& db_path, const std::string& conninfo,
                         int schema_version, SyncOptions options)
    : path_(db_path) {
    if (!std::filesystem::exists(db_path))
        create_lestash_db(db_path, schema_version);
    replica_ = std::make_unique<Replica>(AttachOptions{db_path});
    upstream_ = std::make_unique<Upstream>(conninfo);
    engine_ = std::make_unique<SyncEngine>(*replica_, *upstream_, std::move(options));
}

void TestReplica::sync() {
    engine_->sync_once();
}

void sync_until_quiet(const std::vector<TestReplica*>& replicas) {
    for (int round = 0; round < 10; ++round) {
        std::int64_t moved = 0;
        for (auto* r : replicas) {
            const auto [pushed, pulled] = r->engine().sync_once();
            moved += pushed.entries + pulled.applied + pulled.deleted;
        }
        if (moved == 0)
            return;
    }
    FAIL("replicas did not settle within 10 sync rounds");
}

void require_converged(TestReplica& r) {
    for (const auto* spec_pointer : r.replica().tables()) {
        const auto& spec = *spec_pointer;
        INFO("replica " << r.path() << ", table " << spec.name);
        const auto local = r.engine().local_canonical_rows(spec.name);
        const auto upstream = r.engine().upstream_canonical_rows(spec.name);
        CHECK(local.size() == upstream.size());
        for (const auto& [uuid, text] : upstream) {
            auto it = local.find(uuid);
            INFO("row " << uuid);
            REQUIRE(it != local.end());
            CHECK(it->second == text);
        }
    }
    const auto report = r.engine().verify(false);
    CHECK(report.matches());
    CHECK(r.replica().outbox().depth() == 0);
    CHECK(r.replica().db().query_text("PRAGMA integrity_check") == "ok");
    CHECK_NOTHROW(
        r.replica().db().exec("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')"));
}

}  // namespace lestash::test
