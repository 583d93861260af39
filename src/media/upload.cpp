// An upload of a file the app wrote on this device (see transfer.hpp): the
// file hashed once, then sent chunk by chunk, each chunk bound as a binary
// parameter in a transaction of its own; chunks Postgres already has with
// the same bytes are skipped, so a cut upload resumes where it stopped. The
// blob is completed and its path recorded in the transaction of the last
// chunk, after the second pass hashed to what the first one did (a file
// that changed while being read starts over).
#include <spdlog/spdlog.h>

#include <map>
#include <optional>

#include "lestash_sync/common/sha256.hpp"
#include "local_file.hpp"
#include "transfer.hpp"

namespace lestash {
namespace {

class Upload : public Transfer {
  public:
    using Transfer::Transfer;

    bool advance(MediaContext& ctx, SliceBudget& budget) override {
        Outcome o = Outcome::next;
        if (phase_ == Phase::opening)
            o = open(ctx);
        if (o == Outcome::next && phase_ == Phase::hashing)
            o = hash(ctx, budget);
        if (o == Outcome::next && phase_ == Phase::preparing)
            o = prepare(ctx);
        if (o == Outcome::next && phase_ == Phase::sending)
            o = send(ctx, budget);
        return o == Outcome::finished;
    }

  private:
    enum class Phase { opening, hashing, preparing, sending };
    // A phase finished the transfer, ran out of budget, or moved on.
    enum class Outcome { finished, paused, next };

    // Finished when there is nothing to send (missing, too large).
    Outcome open(MediaContext& ctx) {
        const auto target = ctx.root / entry_.path;
        std::error_code ec;
        if (!std::filesystem::is_regular_file(target, ec)) {
            if (entry_.state != "missing")
                spdlog::warn(
                    "media file {} is named by an item_media row made here, but it is not in {}: "
                    "counted as missing in status, and tried again later",
                    entry_.path, ctx.root.string());
            ctx.retry_later(entry_, "missing", "not on disk at " + target.string());
            return Outcome::finished;
        }
        file_.emplace(LocalFile::open_for_reading(target));
        opened_ = file_->stat();
        entry_.size = opened_.size;
        if (opened_.size > ctx.options.max_file_bytes) {
            if (entry_.state != "too-large")
                spdlog::warn(
                    "media file {} ({} MiB) is larger than [media] max_file_mb ({} MiB): "
                    "not uploaded",
                    entry_.path, opened_.size >> 20, ctx.options.max_file_bytes >> 20);
            ctx.settle(entry_, "too-large");
            return Outcome::finished;
        }
        first_pass_ = Sha256();
        offset_ = 0;
        phase_ = Phase::hashing;
        return Outcome::next;
    }

    // The first pass, moving on once the whole file is hashed.
    Outcome hash(MediaContext& ctx, SliceBudget& budget) {
        while (!budget.spent()) {
            file_->read_at(offset_, kChunkBytes, buffer_);
            first_pass_.update(buffer_);
            offset_ += static_cast<std::int64_t>(buffer_.size());
            budget.spend(static_cast<std::int64_t>(buffer_.size()));
            if (static_cast<std::int64_t>(buffer_.size()) < kChunkBytes) {
                digest_ = first_pass_.hex_digest();
                if (offset_ != opened_.size)
                    return changed(ctx);
                phase_ = Phase::preparing;
                return Outcome::next;
            }
        }
        return Outcome::paused;
    }

    struct Upstreamed {
        std::optional<std::string> finished;  // finish_media_upload's answer
        std::optional<std::string> path_has;  // the content the path already has
        std::int64_t chunk_size = kChunkBytes;
        std::map<std::int64_t, std::string> chunk_digests;
    };

    // The blob's row made (or found) upstream; finished when nothing is
    // left to send: the path is already there, or the content is (under
    // another path) and only the path was added.
    Outcome prepare(MediaContext& ctx) {
        const auto up = ctx.upstream.transact(
            "starting the upload of media file " + entry_.path, [&](pqxx::work& tx) {
                Upstreamed out;
                const auto prior = tx.exec_params(
                    "SELECT sha256 FROM lestash.media_files WHERE path = $1", entry_.path);
                if (!prior.empty()) {
                    out.path_has = prior[0][0].as<std::string>();
                    return out;
                }
                tx.exec_params(
                    "INSERT INTO lestash.media_blobs (sha256, size, chunk_size, uploaded_by) "
                    "VALUES ($1, $2, $3, $4::uuid) ON CONFLICT (sha256) DO NOTHING",
                    digest_, opened_.size, kChunkBytes, ctx.replica_id);
                const auto blob = tx.exec_params1(
                    "SELECT size, chunk_size, complete FROM lestash.media_blobs WHERE sha256 = $1",
                    digest_);
                if (blob[0].as<std::int64_t>() != opened_.size)
                    throw UpstreamError("content " + digest_ + " is recorded in Postgres with " +
                                            blob[0].as<std::string>() + " bytes, but " +
                                            entry_.path + " has " + std::to_string(opened_.size),
                                        false);
                out.chunk_size = blob[1].as<std::int64_t>();
                if (blob[2].as<bool>()) {
                    out.finished = finish(tx, ctx);
                    return out;
                }
                for (const auto& r : tx.exec_params(
                         "SELECT n, encode(sha256(data), 'hex') FROM lestash.media_chunks WHERE "
                         "sha256 = $1",
                         digest_))
                    out.chunk_digests[r[0].as<std::int64_t>()] = r[1].as<std::string>();
                return out;
            });
        if (up.path_has) {
            entry_.sha256 = digest_;
            if (*up.path_has == digest_) {
                ctx.settle(entry_, "uploaded");
            } else {
                spdlog::warn(
                    "media file {}: Postgres has other content at this path ({}, here {}): "
                    "left as it is on both sides",
                    entry_.path, *up.path_has, digest_);
                ctx.settle(entry_, "different");
            }
            return Outcome::finished;
        }
        if (up.finished)
            return settle_finished(ctx, *up.finished);
        if (up.chunk_size <= 0 || up.chunk_size > kMaxChunkBytes)
            throw UpstreamError("content " + digest_ + " has chunks of " +
                                    std::to_string(up.chunk_size) + " bytes in Postgres, more " +
                                    "than lestash-sync reads at once",
                                false);
        chunk_size_ = up.chunk_size;
        chunks_ = (opened_.size + chunk_size_ - 1) / chunk_size_;
        chunk_digests_ = up.chunk_digests;
        if (!chunk_digests_.empty())
            spdlog::info(
                "resuming the upload of media file {}: {} of {} chunks already in Postgres",
                entry_.path, chunk_digests_.size(), chunks_);
        next_chunk_ = 0;
        second_pass_ = Sha256();
        phase_ = Phase::sending;
        return Outcome::next;
    }

    std::string finish(pqxx::work& tx, MediaContext& ctx) {
        return tx
            .exec_params1("SELECT lestash.finish_media_upload($1, $2, $3::uuid)", digest_,
                          entry_.path, ctx.replica_id)[0]
            .as<std::string>();
    }

    Outcome settle_finished(MediaContext& ctx, const std::string& answer) {
        entry_.sha256 = digest_;
        if (answer == "complete") {
            spdlog::info("uploaded media file {} ({} bytes, sha256 {})", entry_.path, opened_.size,
                         digest_);
            ++ctx.step->uploaded;
            ctx.settle(entry_, "uploaded");
        } else if (answer == "other-content") {
            spdlog::warn(
                "media file {}: Postgres already has other content at this path: left "
                "as it is",
                entry_.path);
            ctx.settle(entry_, "different");
        } else {
            ctx.retry_later(entry_, "to-upload",
                            "chunks went missing in Postgres before the upload finished");
        }
        return Outcome::finished;
    }

    void put_chunk(pqxx::work& tx, std::int64_t n) {
        tx.exec_params(
            "INSERT INTO lestash.media_chunks (sha256, n, data) VALUES ($1, $2, $3) ON CONFLICT "
            "(sha256, n) DO UPDATE SET data = EXCLUDED.data",
            digest_, n, pqxx::binarystring(buffer_.data(), buffer_.size()));
    }

    // The second pass, finished with the last chunk.
    Outcome send(MediaContext& ctx, SliceBudget& budget) {
        for (;;) {
            if (budget.spent())
                return Outcome::paused;
            const std::int64_t n = next_chunk_;
            const std::int64_t expected = std::min(chunk_size_, opened_.size - n * chunk_size_);
            if (chunks_ > 0) {
                file_->read_at(n * chunk_size_, static_cast<std::size_t>(chunk_size_), buffer_);
                if (static_cast<std::int64_t>(buffer_.size()) != expected)
                    return changed(ctx);
                second_pass_.update(buffer_);
                budget.spend(expected);
            }
            const bool last = chunks_ == 0 || n + 1 == chunks_;
            const auto known = chunk_digests_.find(n);
            const bool upstream_has = chunks_ == 0 || (known != chunk_digests_.end() &&
                                                       known->second == sha256_hex(buffer_));
            if (chunks_ > 0)
                ++(upstream_has ? ctx.step->chunks_skipped : ctx.step->chunks_sent);
            if (last) {
                if (second_pass_.hex_digest() != digest_ || file_->stat() != opened_)
                    return changed(ctx);
                const auto answer = ctx.upstream.transact(
                    "finishing the upload of media file " + entry_.path, [&](pqxx::work& tx) {
                        if (!upstream_has)
                            put_chunk(tx, n);
                        return finish(tx, ctx);
                    });
                return settle_finished(ctx, answer);
            }
            if (!upstream_has)
                ctx.upstream.transact(
                    "sending chunk " + std::to_string(n) + " of media file " + entry_.path,
                    [&](pqxx::work& tx) { put_chunk(tx, n); });
            ++next_chunk_;
            ctx.fault("media:chunk-sent");
        }
    }

    Outcome changed(MediaContext& ctx) {
        ctx.retry_later(entry_, "to-upload",
                        "the file changed while it was read; it is read again from the start");
        return Outcome::finished;
    }

    Phase phase_ = Phase::opening;
    std::optional<LocalFile> file_;
    LocalFile::Stat opened_;
    Sha256 first_pass_, second_pass_;
    std::string digest_, buffer_;
    std::int64_t offset_ = 0, chunk_size_ = kChunkBytes, chunks_ = 0, next_chunk_ = 0;
    std::map<std::int64_t, std::string> chunk_digests_;
};

}  // namespace

std::unique_ptr<Transfer> start_upload(MediaEntry entry) {
    return std::make_unique<Upload>(std::move(entry));
}

}  // namespace lestash
