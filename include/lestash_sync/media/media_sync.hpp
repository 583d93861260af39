// Media files travel: the files item_media rows name are uploaded once by
// the device whose app wrote them (content-addressed by sha256, in chunks,
// one chunk in memory at a time), and written on every other device at the
// same relative path under its own media folder, atomically and checked
// against their hash before they become visible. Decoupled from push and
// pull: it works from the item_media rows present here (the queue,
// media_queue.hpp) and from what Postgres holds (migration 008). The sync
// worker calls step() after each cycle and again while it says there is
// more; each call does one bounded slice of work, so a 200 MB PDF never
// holds a note's sync back by more than one slice. docs/architecture.md,
// "Media files".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lestash_sync/media/media_queue.hpp"
#include "lestash_sync/media_store/media_reader.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

struct MediaOptions {
    // Files larger than this are not uploaded ([media] max_file_mb); 0: none.
    std::int64_t max_file_bytes = std::int64_t{1024} << 20;
    // One slice of work: about this many bytes read, sent or written, or
    // this long, whichever comes first (at least one chunk).
    std::int64_t slice_bytes = std::int64_t{16} << 20;
    std::chrono::milliseconds slice_time{200};
    // Retries of a missing file, a file not uploaded yet by its origin, a
    // failed transfer: after `first_retry`, doubling up to `max_retry`.
    std::chrono::seconds first_retry{30};
    std::chrono::seconds max_retry{30 * 60};
    // lestash.gc_media runs about this often, with this grace period.
    std::chrono::hours gc_every{24};
    std::string gc_grace = "7 days";
    // Named points where tests cut the connection: "media:chunk-sent",
    // "media:chunk-written" (after each chunk of an upload, a download).
    std::function<void(std::string_view point)> fault_hook;
};

// The number of files in each situation, for status and metrics.
struct MediaCounts {
    std::int64_t to_upload = 0, to_download = 0, waiting = 0, missing = 0, too_large = 0,
                 failed = 0, different = 0, invalid = 0, synced = 0;
    // What Postgres holds: complete contents and their bytes (-1: not known).
    std::int64_t upstream_files = -1, upstream_bytes = -1;
    std::int64_t max_file_bytes = 0;
    bool operator==(const MediaCounts&) const = default;
};

// What one step did.
struct MediaStep {
    bool more = false;  // more work is due now: call again soon
    // When a retry is due next (nothing: no retry waits).
    std::optional<std::chrono::system_clock::time_point> next_retry;
    std::int64_t uploaded = 0, downloaded = 0, removed = 0;
    std::int64_t chunks_sent = 0, chunks_skipped = 0, chunks_fetched = 0;
};

struct MediaVerifyReport {
    std::int64_t files = 0;                    // paths item_media rows name
    std::int64_t pending = 0;                  // written here, upload not finished: left out
    std::int64_t too_large = 0;                // over [media] max_file_mb, never uploaded: left out
    std::vector<std::string> missing_locally;  // Postgres has it, this device not
    std::vector<std::string> missing_upstream;  // this device has it, Postgres not
    std::vector<std::string> different;         // both, with other contents
    std::vector<std::string> unavailable;       // nowhere (lost at its origin), or an invalid path
    std::int64_t repaired = 0;                  // queued again by --repair
    bool matches() const {
        return missing_locally.empty() && missing_upstream.empty() && different.empty();
    }
};

class MediaSync {
  public:
    // Works in the media folder beside the replica's database, with its
    // connection to Postgres. Makes the triggers on item_media and queues
    // what they have not seen (when item_media exists).
    MediaSync(Replica& replica, Upstream& upstream, MediaOptions options = {});
    ~MediaSync();
    MediaSync(const MediaSync&) = delete;
    MediaSync& operator=(const MediaSync&) = delete;

    // One slice: files no row names any more removed (those the daemon
    // wrote), new paths looked at, then uploads and downloads that are due.
    // Raises a transient UpstreamError when the connection is lost (what was
    // done is kept: an upload resumes at the chunks Postgres lacks, a
    // download from its partial file); a file's own failure is recorded on
    // it and retried later, never raised.
    MediaStep step();
    // Every file waiting for a retry is tried at the next step (the owner
    // asked: `lestash-sync now`).
    void retry_now();
    // Files waiting for their origin's upload are looked for again at the
    // next step (Postgres said something changed).
    void files_arrived();
    MediaCounts counts();
    // Each referenced path: the local file's sha256 against Postgres'. With
    // `repair`, what is missing on one side is queued again (and a file the
    // daemon wrote whose content differs is fetched again).
    MediaVerifyReport verify(bool repair);

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace lestash
