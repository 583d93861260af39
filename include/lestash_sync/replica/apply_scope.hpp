// The engine's own write transaction (_lestash_sync_applying): BEGIN
// IMMEDIATE with the apply flag set, so the capture triggers ignore what it
// writes. The flag row is removed before COMMIT, so no other connection ever
// sees it. This module owns every statement on the flag table, the
// condition the triggers test included.
//
// Its COMMIT does not wait for the disk (sqlite::DiskDeferredTransaction):
// what it writes came from Postgres and is pulled again when a power cut
// loses it: the pull cursor is saved with a pull's last chunk (a
// bootstrap's last step), so a lost suffix leaves the older cursor
// (docs/architecture.md, "Durability of the engine's own transactions").
// `wait_for_disk`: for an apply nothing would redo (verify --repair's).
#pragma once

#include <string>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

class ApplyScope {
  public:
    explicit ApplyScope(sqlite::Connection& db, bool wait_for_disk = false);
    void commit();

    // The capture triggers' WHEN condition: no apply in progress.
    static std::string not_applying_sql();

  private:
    sqlite::Connection& db_;
    sqlite::DiskDeferredTransaction txn_;
};

}  // namespace lestash
