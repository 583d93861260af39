// One file on its way (private to the media room): an upload from this
// device or a download to it, moved on slice by slice. Each keeps what it
// needs between slices (an open file, the running hash); what must survive
// a crash or a lost connection is upstream (the chunks sent) or on disk
// (the partial file), so a new transfer for the same path resumes there.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "lestash_sync/media/media_queue.hpp"
#include "lestash_sync/media/media_sync.hpp"
#include "lestash_sync/media_store/media_reader.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

// Bytes the daemons put in one chunk of a new blob.
inline constexpr std::int64_t kChunkBytes = std::int64_t{1} << 20;
// kMaxChunkBytes, the largest chunk accepted from a blob someone else
// started: media_reader.hpp.

double now_seconds();

// What one slice may still do.
class SliceBudget {
  public:
    SliceBudget(std::int64_t bytes, std::chrono::milliseconds time)
        : bytes_left_(bytes), deadline_(std::chrono::steady_clock::now() + time) {}
    bool spent() const { return bytes_left_ <= 0 || std::chrono::steady_clock::now() >= deadline_; }
    void spend(std::int64_t bytes) { bytes_left_ -= bytes; }

  private:
    std::int64_t bytes_left_;
    std::chrono::steady_clock::time_point deadline_;
};

// What transfers share: the queue, Postgres, the media folder, the options,
// the counts of the step in progress.
struct MediaContext {
    MediaQueue& queue;
    Upstream& upstream;
    MediaReader reader;
    std::filesystem::path root;
    std::string replica_id;
    const MediaOptions& options;
    MediaStep* step = nullptr;

    void fault(std::string_view point) const {
        if (options.fault_hook)
            options.fault_hook(point);
    }
    // When to try again after `attempts` tries.
    double retry_at(std::int64_t attempts) const;
    // `entry` saved in `state`, done with (no retry pending).
    void settle(MediaEntry entry, const std::string& state);
    // `entry` saved in `state`, tried again after a backoff; `why` kept.
    void retry_later(MediaEntry entry, const std::string& state, const std::string& why);
};

class Transfer {
  public:
    explicit Transfer(MediaEntry entry) : entry_(std::move(entry)) {}
    virtual ~Transfer() = default;
    const std::string& path() const { return entry_.path; }
    // Moves on within `budget`; true once finished (its entry saved).
    // Raises LocalFileError or a permanent UpstreamError for a failure of
    // this file, a transient UpstreamError when the connection is lost.
    virtual bool advance(MediaContext& context, SliceBudget& budget) = 0;
    const MediaEntry& entry() const { return entry_; }

  protected:
    MediaEntry entry_;
};

std::unique_ptr<Transfer> start_upload(MediaEntry entry);
std::unique_ptr<Transfer> start_download(MediaEntry entry);

}  // namespace lestash
