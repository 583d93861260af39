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

// `push_only`: the push phase alone (for profiling and quick comparisons).
// `text_kb`: every item's content that many KB (0: notes of 1-2 KB).
nlohmann::json bench_sync(const std::filesystem::path& dir, int items,
                          const std::string& admin_conninfo, bool push_only = false,
                          int text_kb = 0);
void print_sync_table(const nlohmann::json& r);

}  // namespace lestash::bench
