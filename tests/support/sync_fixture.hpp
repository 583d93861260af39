// Replicas wired to a fresh upstream database for integration tests. Every
// replica connects as a login role that only has the lestash_sync group's
// privileges, over loopback TCP with a password.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/upstream/upstream.hpp"
#include "temp_dir.hpp"
#include "throwaway_postgres.hpp"

namespace lestash::test {

// A new database on the shared throwaway server with the migrations applied
// the way the Docker entrypoint does (psql -v ON_ERROR_STOP=1 -f, in order).
struct UpstreamDatabase {
    std::string name;
    std::string admin_conninfo;   // superuser
    std::string daemon_conninfo;  // least-privilege login role
};
UpstreamDatabase fresh_upstream(LocalPostgres& server);
UpstreamDatabase fresh_upstream();  // on shared_postgres()

class TestReplica {
  public:
    TestReplica(const std::string& db_path, const std::string& conninfo, int schema_version = 11,
                SyncOptions options = {});
    // Push, then pull, until both have nothing left to do.
    void sync();
    Replica& replica() { return *replica_; }
    SyncEngine& engine() { return *engine_; }
    Upstream& upstream() { return *upstream_; }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    std::unique_ptr<Replica> replica_;
    std::unique_ptr<Upstream> upstream_;
    std::unique_ptr<SyncEngine> engine_;
};

// What most sync tests start from, as Catch fixtures (TEST_CASE_METHOD): a
// fresh upstream database, a temp dir, replica A on it, and replica B.
struct OneReplica {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    TestReplica a{dir.file("a.db"), up.daemon_conninfo};
};
struct TwoReplicas : OneReplica {
    TestReplica b{dir.file("b.db"), up.daemon_conninfo};
};

// Syncs every replica, round after round, until a whole round moves nothing.
void sync_until_quiet(const std::vector<TestReplica*>& replicas);

// Every table of the replica equals Postgres, row for row and byte for byte.
void require_converged(TestReplica& r);

}  // namespace lestash::test
