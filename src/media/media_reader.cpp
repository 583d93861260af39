// Media files read back from Postgres (see media_reader.hpp).
#include "lestash_sync/media/media_reader.hpp"

#include <algorithm>

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

bool MediaReader::stream(const StoredMedia& file, const std::function<bool(std::string_view)>& sink,
                         std::int64_t first) {
    Sha256 hash;
    bool more = true;
    for (std::int64_t n = first; n < file.chunks() && more; ++n) {
        const std::string bytes = read_chunk(file, n);
        hash.update(bytes);
        more = sink(bytes);
    }
    if (!more)
        return false;
    if (first == 0 && hash.hex_digest() != file.sha256)
        throw UpstreamError("media file " + file.path +
                                " read back from Postgres does not hash to " + file.sha256 +
                                ": its chunks upstream are damaged",
                            false);
    return true;
}

}  // namespace lestash
