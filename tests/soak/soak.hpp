// lestash-soak: replicas, writers and faults for as long as asked, then the
// promises of ../../../shared/DESIGN.md checked against what every writer
// was told had been written. Shared types of the soak's parts.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace lestash::soak {

struct Options {
    std::uint64_t seed = 0;
    int duration_s = 180;
    int replicas = 3;
    double kill_interval_s = 1.0;  // mean time between kills of replica A's daemon
    double sample_interval_s = 2.0;
    int converge_deadline_s = 600;  // liveness only
    bool network_faults = true;
    bool pg_restarts = true;
    bool sqlite_faults = true;
    bool kills = true;  // the crash loop on replica a
    std::string report_json;
    std::string keep_dir;  // keep logs and databases here (else a temp dir, removed)
};

// What one writer was told: the item with title `key` exists (or was
// deleted) with this content and these tags. Only its writer edits it.
struct Expected {
    bool exists = true;
    std::string content;
    std::set<std::string> tags;
    bool track_tags = false;  // items written through SQLite carry tags
};

// Every acknowledged write of the run, by key; filled by the writers.
class Ledger {
  public:
    void set(const std::string& key, const Expected& e) {
        std::lock_guard lock(mutex_);
        rows_[key] = e;
    }
    void erase(const std::string& key) {
        std::lock_guard lock(mutex_);
        rows_.erase(key);
    }
    std::map<std::string, Expected> snapshot() const {
        std::lock_guard lock(mutex_);
        return rows_;
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, Expected> rows_;
};

// Counters for the report, bumped from every thread.
struct Counters {
    std::mutex mutex;
    std::map<std::string, std::int64_t> ops;         // operation kind -> acknowledged
    std::map<std::string, std::int64_t> failed;      // operation kind -> refused (busy...)
    std::map<std::string, std::int64_t> kills;       // phase -> kills
    std::map<std::string, std::int64_t> kill_steps;  // last logged step -> kills
    std::map<std::string, std::int64_t> net;         // network fault kind -> count
    std::map<std::string, std::int64_t> pg;          // Postgres restart mode -> count
    std::map<std::string, std::int64_t> sqlite;      // SQLite fault kind -> count
    std::vector<std::string> broken;                 // promises broken, in words
    void add(std::map<std::string, std::int64_t>& m, const std::string& k, std::int64_t n = 1) {
        std::lock_guard lock(mutex);
        m[k] += n;
    }
    void fail(const std::string& why) {
        std::lock_guard lock(mutex);
        broken.push_back(why);
        std::fprintf(stderr, "PROMISE BROKEN: %s\n", why.c_str());
    }
};

// A per-thread random source derived from the run's seed.
inline std::mt19937_64 rng_for(std::uint64_t seed, std::uint64_t stream) {
    std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                      static_cast<std::uint32_t>(stream)};
    return std::mt19937_64(seq);
}

inline double uniform(std::mt19937_64& rng, double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
}

inline std::chrono::milliseconds ms(double seconds) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

}  // namespace lestash::soak
