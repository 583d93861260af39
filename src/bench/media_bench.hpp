// A media file travelling between two real lestash-syncd (issue 15, part
// B): the time from the app's item_media row on A until the file is in
// Postgres and until it is on B, and the daemons' resident memory while it
// moves, beside the same bytes sent to Postgres and read back in one
// statement each by a plain libpq client.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace lestash::bench {

struct MediaBenchOptions {
    int mb = 50;             // size of the file, MiB
    std::string syncd_path;  // empty: lestash-syncd beside this binary
};

// Starts a private Postgres and two daemons under `dir`; stops them all by
// pid before returning or throwing.
nlohmann::json bench_media(const std::filesystem::path& dir, const MediaBenchOptions& options);
void print_media_table(const nlohmann::json& r);

}  // namespace lestash::bench
