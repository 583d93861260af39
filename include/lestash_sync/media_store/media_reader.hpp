// Reading media files back from Postgres (migration 008): the file a
// relative path names, and its bytes chunk by chunk, one chunk in memory at
// a time. The daemons' downloads use it, and so does the phone's endpoint
// (GET /api/media/<path>: docs/mobile.md, section 8). Needs SELECT on
// lestash.media_files, media_blobs, media_chunks (and item_media for
// look_up).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

// The largest chunk accepted from a blob someone else started: what a
// reader holds in memory at once.
inline constexpr std::int64_t kMaxChunkBytes = std::int64_t{16} << 20;

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

// What Postgres knows about a path a client asks for.
struct MediaLookup {
    bool referenced = false;          // a synced item_media row names it
    std::optional<StoredMedia> file;  // its bytes, when upstream holds them complete
};

class MediaReader {
  public:
    explicit MediaReader(Upstream& upstream) : upstream_(upstream) {}

    // The file at `path` when it is complete upstream; nothing when there is
    // none (or its upload has not finished).
    std::optional<StoredMedia> find(const std::string& path);

    // Whether an item_media row names `path`, and the file, in one read
    // transaction: a server hands out only files an item still has.
    MediaLookup look_up(const std::string& path);

    // Chunk `n` (0-based) of the file, read in a short transaction of its
    // own. Raises a permanent UpstreamError when the chunk is missing or has
    // the wrong length, a transient one when the connection fails.
    std::string read_chunk(const StoredMedia& file, std::int64_t n);

    // Gives `sink` the bytes [begin, end) of the file, in order, a chunk at
    // a time, each chunk read in its own transaction (no transaction stays
    // open while a slow client reads, which would hold back every daemon's
    // pull). Stops when `sink` returns false, and then returns false.
    //
    // When `end` is the end of the file, the whole file is checked against
    // its sha256 BEFORE the last bytes are given (the chunks before `begin`
    // are read and hashed, not given): when they differ, a permanent
    // UpstreamError and the sink never gets the end, so a client that counts
    // the bytes it was promised never holds a complete damaged file.
    bool stream(const StoredMedia& file, std::int64_t begin, std::int64_t end,
                const std::function<bool(std::string_view bytes)>& sink);

  private:
    Upstream& upstream_;
};

}  // namespace lestash
