// The daemon's state and counters, kept in memory for status, metrics and
// sd_notify's STATUS line. Written by the sync worker, read by anyone.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/media/media_sync.hpp"

namespace lestash {

enum class DaemonState { starting, syncing, idle, offline, paused, error };
const char* state_name(DaemonState s);

struct DaemonStatus {
    using TimePoint = std::chrono::system_clock::time_point;
    DaemonState state = DaemonState::starting;
    std::string detail;  // the last error, or what the daemon waits for
    std::string replica_id, replica_name, database, postgres_target;
    int upstream_schema_version = 0;
    int objects_version = 0;
    bool postgres_connected = false;
    TimePoint started_at = std::chrono::system_clock::now();
    std::optional<TimePoint> last_push_at, last_pull_at, last_cycle_at;
    PushStats last_push, pushed_total;
    PullStats last_pull, pulled_total;
    std::int64_t outbox_depth = 0;
    double lag_seconds = 0;  // age of the oldest change not pushed yet
    std::int64_t dead_letters = 0;
    // Synced tables the database does not have yet (an older Le Stash), and
    // tables it has that lestash-sync does not know (not synced).
    std::vector<std::string> waiting_tables, unsynced_tables;
    std::int64_t errors_since_start = 0;
    std::int64_t cycles = 0;
    std::int64_t wakeups = 0;  // times any thread of the daemon woke up
    double last_cycle_ms = 0;
    MediaCounts media;  // as of the last media step

    // One short human line: "idle, 0 changes waiting" / "offline: ...".
    std::string summary() const;
};

class StatusBoard {
  public:
    DaemonStatus snapshot() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return status_;
    }
    template <typename F>
    void update(F&& change) {
        std::lock_guard<std::mutex> lock(mutex_);
        change(status_);
    }
    void count_wakeup() {
        std::lock_guard<std::mutex> lock(mutex_);
        ++status_.wakeups;
    }

  private:
    mutable std::mutex mutex_;
    DaemonStatus status_;
};

}  // namespace lestash
