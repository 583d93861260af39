// The sync worker thread (see include/lestash_sync/daemon/sync_worker.hpp).
#include "lestash_sync/daemon/sync_worker.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <iterator>

#include "lestash_sync/daemon/conninfo.hpp"
#include "lestash_sync/replica/dead_letters.hpp"

namespace lestash {
namespace {

enum Request : unsigned {
    kLocal = 1,
    kSync = 2,
    kStop = 4,
    kPause = 8,
    kResume = 16,
    kReload = 32,
    kRemote = 64,
    kJob = 128,
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

SyncWorker::SyncWorker(WorkerSettings settings, StatusBoard& status)
    : settings_(std::move(settings)),
      status_(status),
      backoff_(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.max_backoff)) {
    replica_ = std::make_unique<Replica>(settings_.attach);
    if (!settings_.replica_name.empty())
        replica_->set_meta("replica_name", settings_.replica_name);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    data_version_ = replica_->db().query_int("PRAGMA data_version");
    status_.update([&](DaemonStatus& s) {
        s.replica_id = replica_->replica_id();
        s.replica_name = replica_->name();
        s.database = replica_->path();
        s.postgres_target = settings_.postgres.empty() ? "" : describe_target(settings_.postgres);
        s.objects_version = daemon_objects_version();
    });
    refresh_local_counters();
}

SyncWorker::~SyncWorker() {
    stop();
    if (wake_fd_ >= 0)
        ::close(wake_fd_);
}

void SyncWorker::start(std::function<void()> on_first_cycle) {
    on_first_cycle_ = std::move(on_first_cycle);
    thread_ = std::thread([this] { run(); });
}

void SyncWorker::stop() {
    if (!thread_.joinable())
        return;
    stopping_ = true;
    request(kStop);
    thread_.join();
}

void SyncWorker::request(unsigned bits) {
    requests_.fetch_or(bits);
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void SyncWorker::local_change() {
    request(kLocal);
}
void SyncWorker::sync_now() {
    request(kSync);
}
// The state changes before the call returns, so `resume` followed at once
// by `sync.now` is not refused as paused; the worker applies both in order.
void SyncWorker::pause() {
    status_.update([](DaemonStatus& s) { s.state = DaemonState::paused; });
    request(kPause);
}
void SyncWorker::resume() {
    status_.update([](DaemonStatus& s) {
        if (s.state == DaemonState::paused)
            s.state = DaemonState::idle;
    });
    request(kResume);
}

void SyncWorker::reload(WorkerSettings settings) {
    {
        std::lock_guard<std::mutex> lock(settings_mutex_);
        pending_settings_ = std::move(settings);
    }
    request(kReload);
}

void SyncWorker::run_job(Job job) {
    {
        std::lock_guard<std::mutex> lock(jobs_mutex_);
        jobs_.push_back(std::move(job));
    }
    request(kJob);
}

bool SyncWorker::stuck_longer_than(std::chrono::steady_clock::duration limit) const {
    const auto since = busy_since_ns_.load();
    return since != 0 &&
           now_ns() - since > std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
}

unsigned SyncWorker::wait(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {listener_ ? listener_->socket() : -1, POLLIN, 0}};
    busy_since_ns_ = 0;
    guard_.busy(false);
    const int n = ::poll(fds, listener_ ? 2 : 1, static_cast<int>(timeout.count()));
    busy_since_ns_ = now_ns();
    guard_.busy(true);
    status_.count_wakeup();
    if (n > 0 && (fds[0].revents & POLLIN)) {
        std::uint64_t count;
        [[maybe_unused]] const auto r = ::read(wake_fd_, &count, sizeof count);
    }
    unsigned bits = requests_.exchange(0);
    if (n > 0 && listener_ && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        try {
            if (listener_->drain(replica_->replica_id()) > 0)
                bits |= kRemote;
        } catch (const UpstreamError& e) {
            disconnect(e.what());
        }
    }
    return bits;
}

bool SyncWorker::connect() {
    if (engine_)
        return true;
    if (settings_.postgres.empty())
        return false;
    try {
        // Never wait for ever on a dead network (see with_network_defaults).
        const std::string conninfo = with_network_defaults(settings_.postgres);
        upstream_ = std::make_unique<Upstream>(conninfo);
        // The listener's socket is not watched: it is read without blocking,
        // and quiet for as long as nobody else writes.
        guard_.watch({upstream_->socket()}, upstream_->target());
        SyncOptions opts = settings_.sync;
        opts.should_stop = [this] { return stopping_.load(); };
        // Each step of push and pull at debug level: a crash can be placed.
        opts.fault_hook = [hook = std::move(opts.fault_hook)](std::string_view point) {
            spdlog::debug("step {}", point);
            if (hook)
                hook(point);
        };
        engine_ = std::make_unique<SyncEngine>(*replica_, *upstream_, opts);
        media_ = std::make_unique<MediaSync>(*replica_, *upstream_, settings_.media);
        listener_ = std::make_unique<ChangeListener>(conninfo);
        const int version = upstream_->schema_version();
        status_.update([&](DaemonStatus& s) {
            if (!s.postgres_connected)
                spdlog::info("connected to Postgres at {}", upstream_->target());
            s.postgres_connected = true;
            s.upstream_schema_version = version;
        });
        if (!media_failing_)
            backoff_.reset();
        return true;
    } catch (const Error& e) {
        const bool transient = dynamic_cast<const UpstreamError*>(&e) &&
                               static_cast<const UpstreamError&>(e).transient();
        guard_.forget();
        media_.reset();
        engine_.reset();
        upstream_.reset();
        listener_.reset();
        status_.update([&](DaemonStatus& s) {
            const auto state = transient ? DaemonState::offline : DaemonState::error;
            // Once per change of state, not once per retry.
            if (s.state != state || s.detail != e.what())
                spdlog::warn("{}: {} (retrying with backoff; local changes keep being captured)",
                             state_name(state), e.what());
            s.state = state;
            s.detail = e.what();
            s.postgres_connected = false;
            ++s.errors_since_start;
        });
        return false;
    }
}

void SyncWorker::disconnect(const std::string& why) {
    guard_.forget();
    listener_.reset();
    media_.reset();
    engine_.reset();
    upstream_.reset();
    status_.update([&](DaemonStatus& s) {
        if (s.state != DaemonState::offline)
            spdlog::warn("offline: {}", why);
        s.state = DaemonState::offline;
        s.detail = why;
        s.postgres_connected = false;
        ++s.errors_since_start;
    });
}

void SyncWorker::record_error(const char* what, const std::string& message) {
    status_.update([&](DaemonStatus& s) {
        if (s.detail != message)
            spdlog::error("{}: {}", what, message);  // once per new error
        s.state = DaemonState::error;
        s.detail = message;
        ++s.errors_since_start;
    });
}

void SyncWorker::refresh_local_counters() {
    auto& outbox = replica_->outbox();
    const auto depth = outbox.depth();
    const double lag = depth == 0 ? 0.0 : outbox.lag_seconds();
    const auto dead = DeadLetters(replica_->db()).count();
    status_.update([&](DaemonStatus& s) {
        s.outbox_depth = depth;
        s.lag_seconds = lag;
        s.dead_letters = dead;
        s.waiting_tables = replica_->waiting_tables();
        s.unsynced_tables = replica_->unsynced_tables();
    });
}

void SyncWorker::cycle(const char* why) {
    if (!paused_ && settings_.postgres.empty()) {
        status_.update([](DaemonStatus& s) {
            s.state = DaemonState::offline;
            s.detail = kNoPostgresConfigured;
        });
    }
    if (paused_ || !connect()) {
        refresh_local_counters();
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    bool recovering = false;
    status_.update([&](DaemonStatus& s) {
        recovering = s.state == DaemonState::offline || s.state == DaemonState::error;
        s.state = DaemonState::syncing;
    });
    try {
        const auto [pushed, pulled] = engine_->sync_once();
        held_back_round_ = pulled.held_back ? held_back_round_ + 1 : 0;
        record_cycle(
            why, pushed, pulled,
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count(),
            recovering);
        // A media step failing after every good cycle must not keep the
        // retries at the first step of the backoff: it resets after a media
        // step that works.
        if (!media_failing_)
            backoff_.reset();
    } catch (const UpstreamError& e) {
        if (e.transient()) {
            disconnect(e.what());
        } else {
            record_error("sync failed", e.what());
        }
    } catch (const Error& e) {
        // The local database (app migrated destructively, disk full...).
        record_error("sync stopped", e.what());
    }
    refresh_local_counters();
}

bool SyncWorker::failing() const {
    const auto state = status_.snapshot().state;
    return state == DaemonState::offline || state == DaemonState::error;
}

bool SyncWorker::has_local_changes() {
    return !replica_->outbox().empty();
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kNever = Clock::time_point::max();

// A file event can reach us before the commit that caused it is visible:
// SQLite writes the WAL frames (inotify fires) and only then publishes the
// commit in the shared-memory index, which raises no event. An app that
// keeps its connection open makes no further event, so an event that shows
// no new commit is looked at again a little later, at these intervals.
// A pull that found changes held back (PullStats::held_back) is repeated
// after these intervals, the last one until the changes are read.
constexpr std::chrono::milliseconds kHeldBackRetry[] = {
    std::chrono::milliseconds(10), std::chrono::milliseconds(50), std::chrono::milliseconds(200),
    std::chrono::milliseconds(1000)};

// The first re-checks come soon: a commit is usually visible within a
// millisecond of its file event (the WAL write comes before the commit's
// end), and until it is the change waits (issue 17: the 5 ms first step
// was a third of the A -> B latency's median).
constexpr std::chrono::milliseconds kRecheckAfter[] = {
    std::chrono::milliseconds(1),  std::chrono::milliseconds(2),   std::chrono::milliseconds(5),
    std::chrono::milliseconds(50), std::chrono::milliseconds(500), std::chrono::milliseconds(3000)};

}  // namespace

void SyncWorker::run() {
    cycle("start");
    media_step(0);
    if (on_first_cycle_)
        on_first_cycle_();
    due_ = next_unasked_cycle();
    for (;;) {
        const auto wake_at = std::min({due_, recheck_at_, next_media_step()});
        const auto timeout = std::max(std::chrono::milliseconds(0),
                                      std::chrono::duration_cast<std::chrono::milliseconds>(
                                          wake_at - Clock::now() + std::chrono::milliseconds(1)));
        const bool failing_before = failing();
        unsigned bits = wait(timeout);
        if (bits & kStop || stopping_)
            break;
        bits |= due_recheck(bits);
        bits |= follow_requests(bits);
        const bool timed_out = Clock::now() >= due_;
        const bool run_cycle =
            (bits & (kSync | kRemote)) || timed_out || ((bits & kLocal) && local_commit_to_push());
        if (run_cycle)
            cycle_and_reschedule(bits);  // which schedules the next one itself
        else
            retry_if_it_failed(failing_before);  // the notification connection dropped
        // Files move after a cycle (its rows may name new ones) or when a
        // transfer or retry is due; other wake-ups leave them be.
        if (run_cycle || media_due()) {
            const bool failing_before_media = failing();
            media_step(bits);
            retry_if_it_failed(failing_before_media);
        }
        if (on_cycle_)
            on_cycle_();
    }
    finish();
}

void SyncWorker::media_step(unsigned bits) {
    media_more_ = false;
    if (!media_ || paused_ || failing()) {
        // Recomputed by the next step that runs. Were it kept, a retry
        // time that has passed would make media_due() true at every
        // wake-up: a spin while paused or in error.
        media_retry_.reset();
        return;
    }
    try {
        if (bits & kSync)
            media_->retry_now();
        else if (bits & kRemote)
            media_->files_arrived();
        const auto step = media_->step();
        media_more_ = step.more;
        media_retry_ = step.next_retry;
        const auto counts = media_->counts();
        status_.update([&](DaemonStatus& s) { s.media = counts; });
        media_failing_ = false;
    } catch (const UpstreamError& e) {
        media_failing_ = true;
        if (e.transient())
            disconnect(e.what());
        else
            record_error("media files", e.what());
    } catch (const Error& e) {
        media_failing_ = true;
        record_error("media files", e.what());
    }
}

// Not `Clock::now() >= next_media_step()`: with more to move that compares
// two readings of the clock in an order the compiler picks (clang reads the
// left first, so it was always false and the worker spun on 1 ms waits with
// the transfer never moving).
bool SyncWorker::media_due() const {
    return media_ &&
           (media_more_ || (media_retry_ && std::chrono::system_clock::now() >= *media_retry_));
}

Clock::time_point SyncWorker::next_media_step() const {
    if (!media_)
        return kNever;
    if (media_more_)
        return Clock::now();
    if (!media_retry_)
        return kNever;
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                              *media_retry_ - std::chrono::system_clock::now());
}

// A step outside a cycle that finds Postgres gone (a lost notification
// connection, moving files) schedules the next retry on the backoff
// schedule from now, as a failed cycle does: while failing, local changes
// start no cycle, so the retry would otherwise wait for the safety pull
// (5 minutes by default) with the app's writes piling up in the outbox.
void SyncWorker::retry_if_it_failed(bool failing_before) {
    if (!failing_before && failing())
        due_ = next_unasked_cycle();
}

Clock::time_point SyncWorker::next_unasked_cycle() {
    // The safety pull while all is well, the next retry (with backoff)
    // while Postgres is away.
    return Clock::now() +
           (failing()
                ? backoff_.next()
                : std::chrono::duration_cast<std::chrono::milliseconds>(settings_.safety_pull));
}

unsigned SyncWorker::due_recheck(unsigned bits) {
    // Other wake-ups (the echo of our own push, a control request) leave a
    // pending re-check in place.
    if (bits & kLocal) {
        recheck_round_ = 0;  // a fresh event starts the re-checks over
        recheck_at_ = kNever;
        local_event_at_ = Clock::now();
        return 0;
    }
    if (Clock::now() < recheck_at_)
        return 0;
    recheck_at_ = kNever;
    return kLocal;
}

unsigned SyncWorker::follow_requests(unsigned bits) {
    unsigned more = 0;
    if (bits & kReload) {
        apply_reload();
        more |= kSync;
    }
    if (bits & kPause) {
        paused_ = true;
        status_.update([](DaemonStatus& s) { s.state = DaemonState::paused; });
    }
    if (bits & kResume) {
        paused_ = false;
        status_.update([](DaemonStatus& s) { s.state = DaemonState::idle; });
        more |= kSync;
    }
    if (bits & kJob) {
        run_jobs();
        // A job (verify --repair) may queue, push and refuse on our own
        // connection: no data_version moves for that.
        refresh_local_counters();
    }
    return more;
}

void SyncWorker::apply_reload() {
    std::lock_guard<std::mutex> lock(settings_mutex_);
    disconnect("reloading the configuration");
    settings_.postgres = pending_settings_.postgres;
    status_.update([&](DaemonStatus& s) {
        s.postgres_target = settings_.postgres.empty() ? "" : describe_target(settings_.postgres);
    });
    settings_.sync = pending_settings_.sync;
    settings_.debounce = pending_settings_.debounce;
    settings_.safety_pull = pending_settings_.safety_pull;
    settings_.response_timeout = pending_settings_.response_timeout;
    settings_.media = pending_settings_.media;
    guard_.set_timeout(settings_.response_timeout);
    settings_.max_backoff = pending_settings_.max_backoff;
    backoff_.set_cap(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.max_backoff));
    backoff_.reset();
    // An empty name keeps the stored one, as at start. The attach options
    // (the database, the tables) stay: they need a restart (main says so).
    const auto& name = pending_settings_.replica_name;
    if (name.empty())
        return;
    try {
        if (name == replica_->name())
            return;
        replica_->set_meta("replica_name", name);
        settings_.replica_name = name;
        status_.update([&](DaemonStatus& s) { s.replica_name = name; });
        spdlog::info("replica name now {}", name);
    } catch (const Error& e) {
        spdlog::error("replica name not changed: {}", e.what());
    }
}

void SyncWorker::run_jobs() {
    std::deque<Job> jobs;
    {
        std::lock_guard<std::mutex> lock(jobs_mutex_);
        jobs.swap(jobs_);
    }
    const bool connected = connect();
    const std::string reason = connected ? ""
                               : settings_.postgres.empty()
                                   ? std::string(kNoPostgresConfigured)
                                   : "Postgres is not reachable: " + status_.snapshot().detail +
                                         " — `lestash-sync status` shows when it is back";
    for (auto& job : jobs) job(connected ? engine_.get() : nullptr, *replica_, reason);
}

bool SyncWorker::local_commit_to_push() {
    // The watcher fires for our own commits too: data_version moves only
    // when another connection committed (it is deliberately not re-read
    // after our cycles, so an app commit made during one is still seen
    // here). Writes to tables we do not sync leave the outbox empty. While
    // Postgres is away, local writes wait for the next retry (they are safe
    // in the outbox) rather than hammer it.
    const auto version = replica_->db().query_int("PRAGMA data_version");
    const bool other_commit = version != data_version_;
    data_version_ = version;
    if (other_commit && has_local_changes() && !failing()) {
        // Let a burst land: the debounce counts from the event, so a commit
        // a re-check found (it became visible after its event) has waited
        // part of it, or all, already.
        if (settings_.debounce.count() > 0) {
            std::this_thread::sleep_until(local_event_at_ + settings_.debounce);
            requests_.fetch_and(~static_cast<unsigned>(kLocal));
        }
        return true;
    }
    if (recheck_round_ < std::size(kRecheckAfter))
        recheck_at_ = Clock::now() + kRecheckAfter[recheck_round_++];
    // Only another connection's commit can have moved them since our last
    // cycle, which refreshed them (five queries saved per re-check of our own).
    if (other_commit)
        refresh_local_counters();
    return false;
}

void SyncWorker::record_cycle(const char* why, const PushStats& pushed, const PullStats& pulled,
                              double ms, bool recovering) {
    const bool moved = pushed.entries + pulled.applied + pulled.deleted > 0;
    spdlog::log(moved ? spdlog::level::info : spdlog::level::debug,
                "sync ({}): pushed {} changes ({} rows, {} deleted, {} refused), pulled {} changes "
                "({} applied, {} deleted, {} held) in {:.1f} ms",
                why, pushed.entries, pushed.upserted, pushed.deleted, pushed.dead_lettered,
                pulled.changes, pulled.applied, pulled.deleted, pulled.deferred, ms);
    status_.update([&](DaemonStatus& s) {
        const auto now = std::chrono::system_clock::now();
        if (recovering)
            spdlog::info("back in sync with {}", s.postgres_target);
        s.state = DaemonState::idle;
        s.detail.clear();
        s.last_cycle_at = now;
        s.last_cycle_ms = ms;
        ++s.cycles;
        if (pushed.entries > 0)
            s.last_push_at = now, s.last_push = pushed;
        if (pulled.changes > 0)
            s.last_pull_at = now, s.last_pull = pulled;
        s.pushed_total += pushed;
        s.pulled_total += pulled;
    });
}

void SyncWorker::cycle_and_reschedule(unsigned bits) {
    cycle(bits & kSync     ? "asked"
          : bits & kRemote ? "remote change"
          : bits & kLocal  ? "local change"
          : failing()      ? "retry"
                           : "safety");
    due_ = next_unasked_cycle();
    // Changes committed under a transaction still open on the cluster were
    // left unread, and no event says when it ends: pull again, more slowly
    // the longer it stays open.
    if (held_back_round_ > 0 && !failing()) {
        const auto round =
            std::min<std::size_t>(held_back_round_ - 1, std::size(kHeldBackRetry) - 1);
        due_ = std::min(due_, Clock::now() + kHeldBackRetry[round]);
    }
    // An event merged into this one may belong to a commit that was not
    // visible yet when the cycle read the outbox.
    if (bits & kLocal) {
        recheck_round_ = 0;
        recheck_at_ = Clock::now() + kRecheckAfter[recheck_round_++];
    }
}

void SyncWorker::finish() {
    {
        std::lock_guard<std::mutex> lock(jobs_mutex_);
        for (auto& job : jobs_) job(nullptr, *replica_, "the daemon is stopping");
        jobs_.clear();
    }
    status_.update([](DaemonStatus& s) { s.state = DaemonState::starting; });
    guard_.forget();
    listener_.reset();
    media_.reset();
    engine_.reset();
    upstream_.reset();
}

}  // namespace lestash
