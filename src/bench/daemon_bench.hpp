// What two real lestash-syncd processes cost, each figure beside a raw
// baseline run in the same process: propagation latency of single CLI-like
// writes (from the write on A to the row on B) against a plain Postgres
// INSERT + NOTIFY reaching a LISTENing client; idle wakeups and CPU; memory
// after the writes and after a bulk write; bulk propagation rows/s against
// COPY in and out of Postgres plus a plain SQLite insert of the same rows;
// and fan-out, one write on A reaching N running replicas.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lestash::bench {

struct DaemonBenchOptions {
    int writes = 200;        // single-row app writes timed for latency
    int idle_seconds = 60;   // idle window measured after them
    int bulk = 5000;         // notes of the one-transaction bulk write
    std::string syncd_path;  // empty: lestash-syncd beside this binary
};

// Starts a private Postgres and two daemons on fresh databases under `dir`
// (their logs, and latency.csv with each write's commit time, stay there);
// stops them all by pid before returning or throwing.
nlohmann::json bench_daemon(const std::filesystem::path& dir, const DaemonBenchOptions& options);
void print_daemon_table(const nlohmann::json& r);

struct FanoutBenchOptions {
    std::vector<int> receivers{5, 20};  // one run each: A and that many receiving replicas
    int writes = 100;                   // single-note writes on A timed per run
    std::string syncd_path;             // empty: lestash-syncd beside this binary
};

// Fan-out: per run, a private Postgres, A and N receiving daemons; each
// write on A timed until the last receiver has it, beside INSERT + NOTIFY
// reaching N LISTENing connections; Postgres's CPU per write (the server's
// processes, from /proc) for both, and the daemons'. Stops everything by
// pid before returning or throwing.
nlohmann::json bench_fanout(const std::filesystem::path& dir, const FanoutBenchOptions& options);
void print_fanout_table(const nlohmann::json& r);

}  // namespace lestash::bench
