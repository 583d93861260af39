// The Postgres every integration test talks to: a LocalPostgres in a temp
// dir, on loopback TCP, with fsync off (never used for durability claims).
#pragma once

#include <optional>

#include "lestash_sync/upstream/local_postgres.hpp"
#include "temp_dir.hpp"

namespace lestash::test {

// Where a ThrowawayPostgres keeps its cluster, made before its server and
// removed after it. initdb takes seconds and every integration test case
// runs in a process of its own, so when LESTASH_TEST_POSTGRES_TEMPLATE
// names a cluster (CTest makes one per run: tests/CMakeLists.txt) the data
// directory is a copy of it; otherwise LocalPostgres runs initdb.
class ThrowawayCluster {
  protected:
    ThrowawayCluster();
    LocalPostgresOptions options() const;

  private:
    std::optional<TempDir> copy_;
};

class ThrowawayPostgres : private ThrowawayCluster, public LocalPostgres {
  public:
    ThrowawayPostgres() : LocalPostgres(options()) {}
    ~ThrowawayPostgres();
};

// Makes the cluster LESTASH_TEST_POSTGRES_TEMPLATE names, replacing any
// older one: initdb, one start and a clean stop.
void make_postgres_template();

// The shared server of this test binary, started on first use.
ThrowawayPostgres& shared_postgres();

}  // namespace lestash::test
