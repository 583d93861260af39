// The phone's figures with the real PowerSync service and client core
// (tests/support/powersync_rig.*): the time from a single-note write
// committed on a desktop (a real lestash-syncd pushing it) until the row is
// visible on the phone, beside a raw INSERT into Postgres reaching the same
// phone; and a fresh phone's first sync of a large stash in rows/s, beside
// a plain SELECT of the same rows from Postgres.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace lestash::bench {

struct PhoneBenchOptions {
    int writes = 100;           // single-note writes timed, desktop and raw each
    int items = 20000;          // items of the first-sync figure (each with one tag)
    std::string powersync_dir;  // what tests/powersync/prepare.sh made; empty: the build tree's
    std::string syncd_path;     // empty: lestash-syncd beside this binary
};

// Starts a private Postgres, a desktop daemon, the PowerSync service and
// two phones under `dir` (their logs stay there); stops them all by pid.
nlohmann::json bench_phone(const std::filesystem::path& dir, const PhoneBenchOptions& options);
void print_phone_table(const nlohmann::json& r);

}  // namespace lestash::bench
