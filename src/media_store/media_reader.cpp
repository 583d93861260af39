// Media files read back from Postgres (see media_reader.hpp).
#include "lestash_sync/media_store/media_reader.hpp"

#include <algorithm>
#include <stdexcept>

#include "lestash_sync/common/sha256.hpp"

namespace lestash {

std::int64_t StoredMedia::chunk_bytes(std::int64_t n) const {
    return std::max<std::int64_t>(0, std::min(chunk_size, size - n * chunk_size));
}

std::optional<StoredMedia> MediaReader::find(const std::string& path) {
    return upstream_.transact<pqxx::read_transaction>(
        "looking up media file " + path, [&](pqxx::read_transaction& tx) {
            const auto rows = tx.exec_params(
                "SELECT f.sha256, f.size, b.chunk_size FROM lestash.media_files f JOIN "
                "lestash.media_blobs b USING (sha256) WHERE f.path = $1 AND b.complete",
                path);
            if (rows.empty())
                return std::optional<StoredMedia>();
            return std::optional<StoredMedia>(StoredMedia{path, rows[0][0].as<std::string>(),
                                                          rows[0][1].as<std::int64_t>(),
                                                          rows[0][2].as<std::int64_t>()});
        });
}

std::string MediaReader::read_chunk(const StoredMedia& file, std::int64_t n) {
    const std::string what =
        "chunk " + std::to_string(n) + " of media file " + file.path + " (" + file.sha256 + ")";
    return upstream_.transact<pqxx::read_transaction>(
        "reading " + what, [&](pqxx::read_transaction& tx) {
            const auto rows =
                tx.exec_params("SELECT data FROM lestash.media_chunks WHERE sha256 = $1 AND n = $2",
                               file.sha256, n);
            if (rows.empty())
                throw UpstreamError(what + " is missing upstream", false);
            const pqxx::binarystring bytes(rows[0][0]);
            if (static_cast<std::int64_t>(bytes.size()) != file.chunk_bytes(n))
                throw UpstreamError(what + " has " + std::to_string(bytes.size()) +
                                        " bytes upstream, expected " +
                                        std::to_string(file.chunk_bytes(n)),
                                    false);
            return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        });
}

MediaLookup MediaReader::look_up(const std::string& path) {
    return upstream_.transact<pqxx::read_transaction>(
        "looking up media file " + path, [&](pqxx::read_transaction& tx) {
            const auto rows = tx.exec_params(
                "SELECT EXISTS (SELECT 1 FROM lestash.item_media WHERE local_path = $1), "
                "f.sha256, f.size, b.chunk_size FROM (SELECT 1) one LEFT JOIN "
                "(lestash.media_files f JOIN lestash.media_blobs b ON b.sha256 = f.sha256 AND "
                "b.complete) ON f.path = $1",
                path);
            MediaLookup found;
            found.referenced = rows[0][0].as<bool>();
            if (!rows[0][1].is_null())
                found.file =
                    StoredMedia{path, rows[0][1].as<std::string>(), rows[0][2].as<std::int64_t>(),
                                rows[0][3].as<std::int64_t>()};
            return found;
        });
}

bool MediaReader::stream(const StoredMedia& file, std::int64_t begin, std::int64_t end,
                         const std::function<bool(std::string_view)>& sink) {
    if (begin < 0 || end > file.size || begin > end)
        throw std::invalid_argument("bytes " + std::to_string(begin) + "-" + std::to_string(end) +
                                    " are not in media file " + file.path);
    if (file.size > 0 && (file.chunk_size <= 0 || file.chunk_size > kMaxChunkBytes))
        throw UpstreamError("media file " + file.path + " is stored in chunks of " +
                                std::to_string(file.chunk_size) + " bytes, more than the " +
                                std::to_string(kMaxChunkBytes) + " a reader holds in memory",
                            false);
    const bool whole = end == file.size;
    Sha256 hash;
    const std::int64_t first = whole ? 0 : begin / std::max<std::int64_t>(1, file.chunk_size);
    for (std::int64_t n = first; n < file.chunks(); ++n) {
        const std::int64_t at = n * file.chunk_size;
        if (at >= end)
            break;
        const std::string bytes = read_chunk(file, n);
        if (whole)
            hash.update(bytes);
        if (whole && n + 1 == file.chunks() && hash.hex_digest() != file.sha256)
            throw UpstreamError("media file " + file.path +
                                    " read back from Postgres does not hash to " + file.sha256 +
                                    ": its chunks upstream are damaged",
                                false);
        if (at + file.chunk_size <= begin)
            continue;  // before the range: hashed only
        const auto from = static_cast<std::size_t>(std::max<std::int64_t>(0, begin - at));
        const auto to =
            static_cast<std::size_t>(std::min(end - at, static_cast<std::int64_t>(bytes.size())));
        if (!sink(std::string_view(bytes).substr(from, to - from)))
            return false;
    }
    if (whole && file.size == 0 && hash.hex_digest() != file.sha256)
        throw UpstreamError("media file " + file.path + " is empty upstream but its sha256 is " +
                                file.sha256 + ": its record upstream is damaged",
                            false);
    return true;
}

}  // namespace lestash
