// The Postgres every integration test talks to: a LocalPostgres in a temp
// dir, on loopback TCP, with fsync off (never used for durability claims).
#pragma once

#include "lestash_sync/upstream/local_postgres.hpp"

namespace lestash::test {

class ThrowawayPostgres : public LocalPostgres {
  public:
    ThrowawayPostgres() : LocalPostgres(LocalPostgresOptions{"", true, false}) {}
};

// The shared server of this test binary, started on first use.
ThrowawayPostgres& shared_postgres();

}  // namespace lestash::test
