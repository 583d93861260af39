// Reading media files back from Postgres (migration 008): the file a
// relative path names, and its bytes chunk by chunk, one chunk in memory at
// a time. The daemon's downloads use it, and so can any other server that
// hands files out (the phone's endpoint, GET /api/media/<path>:
// docs/mobile.md). Needs SELECT on lestash.media_files, media_blobs and
// media_chunks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

// A file Postgres holds in full.
struct StoredMedia {
    std::string path;    // relative, as in item_media.local_path
    std::string sha256;  // lowercase hex of the whole file
    std::int64_t size = 0;
    std::int64_t chunk_size = 0;  // every chunk but the last has this many bytes
    std::int64_t chunks() const { return chunk_size ? (size + chunk_size - 1) / chunk_size : 0; }
    // Bytes in chunk `n`.
    std::int64_t chunk_bytes(std::int64_t n) const;
};

class MediaReader {
  public:
    explicit MediaReader(Upstream& upstream) : upstream_(upstream) {}

    // The file at `path` when it is complete upstream; nothing when there is
    // none (or its upload has not finished).
    std::optional<StoredMedia> find(const std::string& path);

    // Chunk `n` (0-based) of the file, read in a short transaction of its
    // own. Raises a permanent UpstreamError when the chunk is missing or has
    // the wrong length, a transient one when the connection fails.
    std::string read_chunk(const StoredMedia& file, std::int64_t n);

    // Gives `sink` every chunk from `first` on, in order, each read in its
    // own transaction (no transaction stays open while a slow client
    // reads, which would hold back every daemon's pull). Stops when `sink`
    // returns false, and then returns false. When it streamed the whole
    // file (first == 0), the bytes are checked against sha256: a permanent
    // UpstreamError at the end when they differ (the client must then drop
    // what it received).
    bool stream(const StoredMedia& file, const std::function<bool(std::string_view bytes)>& sink,
                std::int64_t first = 0);

  private:
    Upstream& upstream_;
};

}  // namespace lestash
