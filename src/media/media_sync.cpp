// The media step (see media_sync.hpp): what the queue says is to be done,
// one slice at a time.
#include "lestash_sync/media/media_sync.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "lestash_sync/common/sha256.hpp"
#include "lestash_sync/media_store/media_path.hpp"
#include "local_file.hpp"
#include "transfer.hpp"

namespace lestash {
namespace fs = std::filesystem;

namespace {

// Rows looked at per step when many appear at once (an import).
constexpr int kRowsPerStep = 500;
constexpr double kUpstreamFiguresMaxAge = 300;  // seconds

}  // namespace

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double MediaContext::retry_at(std::int64_t attempts) const {
    const double first = static_cast<double>(options.first_retry.count());
    const double most = static_cast<double>(options.max_retry.count());
    const double delay =
        std::min(most, first * std::pow(2.0, static_cast<double>(std::max<std::int64_t>(
                                                 0, std::min<std::int64_t>(attempts, 40) - 1))));
    return now_seconds() + delay;
}

void MediaContext::settle(MediaEntry entry, const std::string& state) {
    entry.state = state;
    entry.attempts = 0;
    entry.last_error.clear();
    entry.next_attempt_at = 0;
    queue.save(entry);
}

void MediaContext::retry_later(MediaEntry entry, const std::string& state, const std::string& why) {
    entry.state = state;
    ++entry.attempts;
    entry.last_error = why;
    entry.next_attempt_at = retry_at(entry.attempts);
    queue.save(entry);
}

struct MediaSync::State {
    State(Replica& r, Upstream& up, MediaOptions o)
        : replica(r), options(std::move(o)), queue(r.db()), context{queue,
                                                                    up,
                                                                    MediaReader(up),
                                                                    media_root(r.path()),
                                                                    r.replica_id(),
                                                                    options} {}

    Replica& replica;
    MediaOptions options;
    MediaQueue queue;
    MediaContext context;
    std::unique_ptr<Transfer> current;
    std::int64_t schema_version_seen = -1;
    bool installed = false;
    double upstream_figures_at = -1e18;
    std::int64_t upstream_files = -1, upstream_bytes = -1;

    // The triggers made (again) when item_media appeared or the app changed
    // its schema; false while there is no item_media table, or while
    // [sync] tables leaves it out (its files follow its rows, or nothing).
    bool follow_schema() {
        const auto& tables = replica.tables();
        if (std::none_of(tables.begin(), tables.end(),
                         [](const TableSpec* t) { return t->name == "item_media"; }))
            return false;
        const auto version = replica.db().query_int("PRAGMA schema_version");
        if (version == schema_version_seen)
            return installed;
        schema_version_seen = version;
        installed = queue.item_media_exists();
        if (installed)
            queue.install_and_reconcile();
        return installed;
    }

    void remove_unreferenced(MediaStep& step) {
        for (const auto& e : queue.unreferenced(kRowsPerStep)) {
            if (current && current->path() == e.path)
                current.reset();
            if (media_path_problem(e.path).empty()) {
                const fs::path target = context.root / e.path;
                remove_file(partial_path(target));
                if (e.owned && remove_file(target)) {
                    spdlog::info("removed media file {}: no item names it any more", e.path);
                    ++step.removed;
                }
                remove_empty_directories(target.parent_path(), context.root);
            }
            queue.remove(e.path);
        }
    }

    // New paths: what is to be done with each.
    void classify_new() {
        for (auto e : queue.in_state("new", kRowsPerStep)) {
            if (const auto problem = media_path_problem(e.path); !problem.empty()) {
                spdlog::warn("media file {} is never read or written: {}", e.path, problem);
                context.settle(e, "invalid");
                continue;
            }
            std::error_code ec;
            const bool on_disk = fs::exists(fs::symlink_status(context.root / e.path, ec));
            if (e.origin == "unknown")
                e.origin = on_disk ? "here" : "elsewhere";
            context.settle(e, e.origin == "here" ? "to-upload" : "to-download");
        }
    }

    std::unique_ptr<Transfer> begin(const MediaEntry& e) {
        return e.origin == "here" ? start_upload(e) : start_download(e);
    }

    // Moves transfers on until the budget is spent or none is due. Due as
    // of the step's start: a file put off during this step (missing, not
    // uploaded yet) waits for the next one, even with no backoff at all.
    void transfer(MediaStep& step) {
        SliceBudget budget(options.slice_bytes, options.slice_time);
        context.step = &step;
        const double started = now_seconds();
        while (!budget.spent()) {
            if (!current) {
                const auto due = queue.next_due(started);
                if (!due)
                    break;
                current = begin(*due);
            }
            if (!still_wanted(*current)) {
                current.reset();
                continue;
            }
            if (advance(*current, budget))
                current.reset();
        }
    }

    // The entry may have moved on while the transfer waited between slices
    // (a verify --repair, a delete being looked at).
    bool still_wanted(const Transfer& t) {
        const auto now = queue.get(t.path());
        return now && now->state == t.entry().state;
    }

    // One transfer's failure stays with its file.
    bool advance(Transfer& t, SliceBudget& budget) {
        try {
            return t.advance(context, budget);
        } catch (const UpstreamError& e) {
            if (e.transient())
                throw;
            fail(t, e.what());
        } catch (const LocalFileError& e) {
            fail(t, e.what());
        }
        return true;
    }

    void fail(const Transfer& t, const std::string& why) {
        auto e = queue.get(t.path());
        if (!e)
            return;
        if (e->state != "failed")
            spdlog::warn("media file {}: {}; tried again later", e->path, why);
        context.retry_later(*e, "failed", why);
    }

    void collect_garbage() {
        const double now = now_seconds();
        const auto last = replica.meta("media_gc_at");
        const double every = std::chrono::duration<double>(options.gc_every).count();
        if (last && now - std::stod(*last) < every)
            return;
        context.upstream.transact(
            "removing media files no item names any more", [&](pqxx::work& tx) {
                const auto r = tx.exec_params1("SELECT * FROM lestash.gc_media($1::interval)",
                                               options.gc_grace);
                if (r[0].as<std::int64_t>() + r[1].as<std::int64_t>() > 0)
                    spdlog::info(
                        "removed {} media files and {} contents ({} bytes) "
                        "from Postgres that no item named for {}",
                        r[0].as<std::int64_t>(), r[1].as<std::int64_t>(), r[2].as<std::int64_t>(),
                        options.gc_grace);
            });
        replica.set_meta("media_gc_at", std::to_string(now));
        upstream_figures_at = -1e18;
    }

    void read_upstream_figures() {
        const double now = now_seconds();
        if (now - upstream_figures_at < kUpstreamFiguresMaxAge)
            return;
        context.upstream.transact<pqxx::read_transaction>(
            "reading the space media files take in Postgres", [&](pqxx::read_transaction& tx) {
                const auto r = tx.exec1(
                    "SELECT count(*), coalesce(sum(size), 0)::bigint FROM lestash.media_blobs "
                    "WHERE complete");
                upstream_files = r[0].as<std::int64_t>();
                upstream_bytes = r[1].as<std::int64_t>();
            });
        upstream_figures_at = now;
    }
};

MediaSync::MediaSync(Replica& replica, Upstream& upstream, MediaOptions options)
    : state_(std::make_unique<State>(replica, upstream, std::move(options))) {
    state_->follow_schema();
    if (state_->installed)
        state_->queue.requeue_fitting(state_->options.max_file_bytes);
}

MediaSync::~MediaSync() = default;

MediaStep MediaSync::step() {
    auto& s = *state_;
    MediaStep out;
    if (!s.follow_schema())
        return out;
    s.remove_unreferenced(out);
    s.classify_new();
    s.transfer(out);
    if (out.uploaded + out.downloaded + out.removed > 0)
        s.upstream_figures_at = -1e18;
    s.collect_garbage();
    const double now = now_seconds();
    out.more = s.current != nullptr || s.queue.has_work(now);
    if (const auto at = s.queue.next_retry(now))
        out.next_retry = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::duration<double>(*at)));
    return out;
}

void MediaSync::retry_now() {
    if (state_->installed)
        state_->queue.retry_now();
    state_->upstream_figures_at = -1e18;
}

void MediaSync::files_arrived() {
    // Every remote change wakes this, most not about files: the figures of
    // Postgres's space are read again after a step that moved a file.
    if (state_->installed)
        state_->queue.retry_waiting();
}

MediaCounts MediaSync::counts() {
    auto& s = *state_;
    MediaCounts c;
    c.max_file_bytes = s.options.max_file_bytes;
    s.read_upstream_figures();
    c.upstream_files = s.upstream_files;
    c.upstream_bytes = s.upstream_bytes;
    if (!s.installed)
        return c;
    for (const auto& [state, n] : s.queue.counts()) {
        if (state == "new")
            continue;  // looked at in the next step
        if (state == "to-upload")
            c.to_upload += n;
        else if (state == "to-download")
            c.to_download += n;
        else if (state == "waiting")
            c.waiting += n;
        else if (state == "missing")
            c.missing += n;
        else if (state == "too-large")
            c.too_large += n;
        else if (state == "failed")
            c.failed += n;
        else if (state == "different")
            c.different += n;
        else if (state == "invalid")
            c.invalid += n;
        else
            c.synced += n;
    }
    return c;
}

namespace {

// The sha256 of a local file, read a chunk at a time; nothing when there is
// no file.
std::optional<std::string> local_digest(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        return std::nullopt;
    const auto file = LocalFile::open_for_reading(path);
    Sha256 hash;
    std::string buffer;
    for (std::int64_t offset = 0;; offset += kChunkBytes) {
        file.read_at(offset, kChunkBytes, buffer);
        hash.update(buffer);
        if (static_cast<std::int64_t>(buffer.size()) < kChunkBytes)
            return hash.hex_digest();
    }
}

}  // namespace

MediaVerifyReport MediaSync::verify(bool repair) {
    auto& s = *state_;
    MediaVerifyReport report;
    s.schema_version_seen = -1;  // queue whatever the triggers may have missed
    if (!s.follow_schema())
        return report;
    auto requeue = [&](MediaEntry e, const char* state, const char* origin) {
        if (s.current && s.current->path() == e.path)
            s.current.reset();
        e.origin = origin;
        s.context.settle(e, state);
        ++report.repaired;
    };
    for (const auto& path : s.queue.referenced_paths()) {
        ++report.files;
        const auto entry = s.queue.get(path);
        if (!entry || entry->state == "invalid") {
            report.unavailable.push_back(path);
            continue;
        }
        if (entry->state == "too-large") {
            ++report.too_large;
            continue;
        }
        const auto up = s.context.reader.find(path);
        std::optional<std::string> local;
        try {
            local = local_digest(s.context.root / path);
        } catch (const LocalFileError& e) {
            spdlog::warn("verify: {}", e.what());
            report.different.push_back(path);
            continue;
        }
        if (local && !up && (entry->state == "to-upload" || entry->state == "new")) {
            ++report.pending;
        } else if (!local && !up) {
            report.unavailable.push_back(path);
        } else if (!local) {
            report.missing_locally.push_back(path);
            if (repair)
                requeue(*entry, "to-download", "elsewhere");
        } else if (!up) {
            report.missing_upstream.push_back(path);
            if (repair)
                requeue(*entry, "to-upload", "here");
        } else if (*local != up->sha256) {
            report.different.push_back(path);
            if (repair && entry->owned) {  // the daemon's own copy: fetched again
                remove_file(s.context.root / path);
                requeue(*entry, "to-download", "elsewhere");
            }
        }
    }
    return report;
}

}  // namespace lestash
