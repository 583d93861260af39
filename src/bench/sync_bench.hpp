// Push, pull and bootstrap figures against their raw baselines.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash::bench {

// Runs against `admin_conninfo` (a scratch database is created and dropped),
// or against a private Postgres the benchmark starts when it is empty.
// Removes the capture triggers: a v11 database as the app alone has it.
void drop_capture_triggers(sqlite::Connection& db);

struct SyncBenchOptions {
    int items = 100000;
    std::string admin_conninfo;
    bool push_only = false;  // the push phase alone (for profiling and quick comparisons)
    int text_kb = 0;         // every item's content that many KB (0: notes of 1-2 KB)
    bool app_open = false;   // the sqlite3 shell connected to B while it bootstraps and pulls
};
nlohmann::json bench_sync(const std::filesystem::path& dir, const SyncBenchOptions& options);
void print_sync_table(const nlohmann::json& r);

}  // namespace lestash::bench
