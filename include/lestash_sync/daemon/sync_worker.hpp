// The thread that does all the blocking work: it owns the replica's SQLite
// connection and the Postgres connections, runs sync cycles when told about
// local writes, when Postgres notifies, and on a slow safety timer, and
// retries with backoff while Postgres is away. The event loop only wakes it.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "lestash_sync/daemon/backoff.hpp"
#include "lestash_sync/daemon/response_guard.hpp"
#include "lestash_sync/daemon/status.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/media/media_sync.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/upstream/listener.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

// Why a daemon with no Postgres configured does not sync (its status
// detail, and the answer to what needs Postgres).
inline constexpr const char* kNoPostgresConfigured =
    "no Postgres configured: capturing changes locally only — set [postgres] conninfo in "
    "sync.toml or start lestash-syncd with --postgres";

struct WorkerSettings {
    AttachOptions attach;
    std::string postgres;      // libpq conninfo; empty: capture only
    std::string replica_name;  // empty: keep the stored one / hostname-based
    SyncOptions sync;
    std::chrono::milliseconds debounce{2};
    std::chrono::seconds safety_pull{300};
    std::chrono::seconds max_backoff{60};
    // A Postgres request unanswered this long: the connection is dropped
    // and made again (see ResponseGuard).
    std::chrono::seconds response_timeout{60};
    MediaOptions media;
};

class SyncWorker {
  public:
    // Attaches to the database right away (so a bad path fails at start,
    // with its message); the thread starts with start().
    SyncWorker(WorkerSettings settings, StatusBoard& status);
    ~SyncWorker();
    SyncWorker(const SyncWorker&) = delete;
    SyncWorker& operator=(const SyncWorker&) = delete;

    // `on_first_cycle` runs (on the worker thread) once the first catch-up
    // attempt is over, successful or not: the moment for READY=1.
    void start(std::function<void()> on_first_cycle);
    // Runs on the worker thread after every cycle (status may have changed).
    void on_cycle(std::function<void()> callback) { on_cycle_ = std::move(callback); }
    // Finishes (or rolls back) the batch in flight, closes, joins.
    void stop();

    // Thread-safe requests.
    void local_change();
    void sync_now();
    void pause();
    void resume();
    // Replaces the settings; the worker reconnects with them.
    void reload(WorkerSettings settings);
    // Runs `job` on the worker thread between cycles (after the one in
    // flight), with the engine connected to Postgres, or nullptr and the
    // reason when Postgres cannot be reached. Jobs must not throw.
    using Job = std::function<void(SyncEngine* engine, Replica& replica,
                                   const std::string& offline_reason)>;
    void run_job(Job job);

    // The media files' sync while connected (nullptr otherwise). Only on the
    // worker thread: inside a job.
    MediaSync* media() { return media_.get(); }

    // True when a cycle has been running for longer than `limit` (hung).
    bool stuck_longer_than(std::chrono::steady_clock::duration limit) const;
    const std::string& database_path() const { return settings_.attach.path; }

  private:
    // The thread's loop: wait, follow requests, run a cycle when one is due.
    void run();
    std::chrono::steady_clock::time_point next_unasked_cycle();
    // Reschedules the retry when a step outside a cycle began the failing.
    void retry_if_it_failed(bool failing_before);
    // kLocal when a re-check of an earlier file event is due now.
    unsigned due_recheck(unsigned bits);
    // Reload, pause, resume and jobs; returns the request bits they add.
    unsigned follow_requests(unsigned bits);
    void apply_reload();
    void run_jobs();
    // After a file event: whether another connection committed a change to
    // push (else a re-check is scheduled).
    bool local_commit_to_push();
    void cycle_and_reschedule(unsigned bits);
    // One slice of media work after the cycle (media_sync.hpp); a file that
    // arrived upstream (`bits` kRemote) or `lestash-sync now` (kSync) makes
    // the files waiting for it due now.
    void media_step(unsigned bits);
    std::chrono::steady_clock::time_point next_media_step() const;
    bool media_due() const;
    // Answers the jobs left and lets go of the connections.
    void finish();
    void cycle(const char* why);
    // A cycle that went through: its line in the log, its counts in status.
    void record_cycle(const char* why, const PushStats& pushed, const PullStats& pulled, double ms,
                      bool recovering);
    bool connect();
    void disconnect(const std::string& why);
    void refresh_local_counters();
    // Error state, logged only when the message differs from the last one.
    void record_error(const char* what, const std::string& message);
    bool failing() const;
    bool has_local_changes();
    // Waits for a request, a notification or the timeout; returns the
    // request bits that were set.
    unsigned wait(std::chrono::milliseconds timeout);
    void request(unsigned bits);

    WorkerSettings settings_;
    WorkerSettings pending_settings_;
    StatusBoard& status_;
    std::unique_ptr<Replica> replica_;
    std::unique_ptr<Upstream> upstream_;
    std::unique_ptr<SyncEngine> engine_;
    std::unique_ptr<ChangeListener> listener_;
    std::unique_ptr<MediaSync> media_;
    bool media_more_ = false;     // a slice is due at once
    bool media_failing_ = false;  // the last media step threw: the backoff keeps growing
    std::optional<std::chrono::system_clock::time_point> media_retry_;
    std::function<void()> on_first_cycle_;
    std::function<void()> on_cycle_;
    std::thread thread_;
    int wake_fd_ = -1;
    std::atomic<unsigned> requests_{0};
    std::atomic<bool> stopping_{false};
    std::atomic<std::int64_t> busy_since_ns_{0};  // 0 while waiting
    std::int64_t data_version_ = -1;
    bool paused_ = false;
    std::chrono::steady_clock::time_point due_{};  // the next cycle nobody asked for
    std::chrono::steady_clock::time_point recheck_at_ =
        std::chrono::steady_clock::time_point::max();
    std::size_t recheck_round_ = 0;
    // When the last file event came: the debounce runs from it.
    std::chrono::steady_clock::time_point local_event_at_{};
    std::size_t held_back_round_ = 0;  // pulls in a row that left changes held back
    Backoff backoff_;
    std::mutex settings_mutex_;
    std::mutex jobs_mutex_;
    std::deque<Job> jobs_;
    ResponseGuard guard_{settings_.response_timeout};
};

}  // namespace lestash
