// A download of a file a row from elsewhere names (see transfer.hpp): the
// chunks written into `.<name>.lestash-partial` beside the target and
// hashed as they come, the partial file flushed, its sha256 compared with
// Postgres' (and with the 12 hex digits its name starts with, when it
// follows the app's pattern), then renamed into place without ever
// replacing a file that is there, and the directory flushed. A partial
// file left by a cut or a crash is hashed again and continued. A file
// already at the path is left alone: counted as present when its content
// is the same, as different otherwise.
#include <spdlog/spdlog.h>

#include <optional>

#include "lestash_sync/common/sha256.hpp"
#include "lestash_sync/media_store/media_path.hpp"
#include "local_file.hpp"
#include "transfer.hpp"

namespace lestash {
namespace {

namespace fs = std::filesystem;

class Download : public Transfer {
  public:
    using Transfer::Transfer;

    bool advance(MediaContext& ctx, SliceBudget& budget) override {
        Outcome o = Outcome::next;
        if (phase_ == Phase::looking_up)
            o = look_up(ctx);
        if (o == Outcome::next && phase_ == Phase::hashing_local)
            o = hash_local(ctx, budget);
        if (o == Outcome::next && phase_ == Phase::fetching)
            o = fetch(ctx, budget);
        return o == Outcome::finished;
    }

  private:
    // hashing_local: the bytes already on disk, either a file that was at
    // the path (`existing_`) or the partial file being continued.
    enum class Phase { looking_up, hashing_local, fetching };
    enum class Outcome { finished, paused, next };

    Outcome look_up(MediaContext& ctx) {
        auto found = ctx.reader.find(entry_.path);
        if (!found) {
            ctx.retry_later(entry_, "waiting", "its origin has not uploaded it yet");
            return Outcome::finished;
        }
        file_ = std::move(*found);
        if (file_.chunk_size <= 0 || file_.chunk_size > kMaxChunkBytes)
            throw UpstreamError("media file " + entry_.path + " has chunks of " +
                                    std::to_string(file_.chunk_size) +
                                    " bytes in Postgres, more than lestash-sync reads at once",
                                false);
        target_ = ctx.root / entry_.path;
        entry_.sha256 = file_.sha256;
        entry_.size = file_.size;
        std::error_code ec;
        if (fs::exists(fs::symlink_status(target_, ec))) {
            existing_ = true;
            local_.emplace(LocalFile::open_for_reading(target_));
            hashed_until_ = local_->stat().size;
        } else {
            fs::create_directories(target_.parent_path(), ec);
            if (ec)
                throw LocalFileError("cannot create " + target_.parent_path().string() + ": " +
                                     ec.message());
            local_.emplace(LocalFile::open_for_writing(partial_path(target_)));
            // Whole chunks already written by an earlier attempt are kept.
            const std::int64_t kept =
                std::min(local_->stat().size / file_.chunk_size, file_.chunks());
            hashed_until_ = kept * file_.chunk_size;
            if (kept * file_.chunk_size > file_.size)
                hashed_until_ = file_.size;
            local_->truncate(hashed_until_);
            next_chunk_ = kept;
            if (kept > 0)
                spdlog::info("resuming the download of media file {} at chunk {} of {}",
                             entry_.path, kept, file_.chunks());
        }
        offset_ = 0;
        phase_ = Phase::hashing_local;
        return Outcome::next;
    }

    Outcome hash_local(MediaContext& ctx, SliceBudget& budget) {
        while (offset_ < hashed_until_) {
            if (budget.spent())
                return Outcome::paused;
            local_->read_at(offset_, static_cast<std::size_t>(file_.chunk_size), buffer_);
            if (buffer_.empty())
                break;
            hash_.update(buffer_);
            offset_ += static_cast<std::int64_t>(buffer_.size());
            budget.spend(static_cast<std::int64_t>(buffer_.size()));
        }
        if (!existing_) {
            phase_ = Phase::fetching;
            return Outcome::next;
        }
        // A file was at the path already: the app's, or one written before.
        if (hash_.hex_digest() == file_.sha256) {
            ctx.settle(entry_, "present");
        } else {
            spdlog::warn("media file {}: a file with other content is already at {}; left alone",
                         entry_.path, target_.string());
            ctx.settle(entry_, "different");
        }
        return Outcome::finished;
    }

    Outcome fetch(MediaContext& ctx, SliceBudget& budget) {
        while (next_chunk_ < file_.chunks()) {
            if (budget.spent())
                return Outcome::paused;
            const std::string bytes = ctx.reader.read_chunk(file_, next_chunk_);
            local_->write_at(next_chunk_ * file_.chunk_size, bytes);
            hash_.update(bytes);
            budget.spend(static_cast<std::int64_t>(bytes.size()));
            ++ctx.step->chunks_fetched;
            ++next_chunk_;
            ctx.fault("media:chunk-written");
        }
        return place(ctx);
    }

    Outcome place(MediaContext& ctx) {
        const auto partial = partial_path(target_);
        const std::string digest = hash_.hex_digest();
        const std::string named = name_digest_prefix(entry_.path);
        std::string wrong;
        if (digest != file_.sha256)
            wrong = "its bytes hash to " + digest + ", not to the sha256 Postgres has for it (" +
                    file_.sha256 + ")";
        else if (!named.empty() && digest.compare(0, named.size(), named) != 0)
            wrong =
                "its name says its sha256 starts with " + named + ", its bytes hash to " + digest;
        if (!wrong.empty()) {
            local_.reset();
            remove_file(partial);
            spdlog::warn("media file {} not written: {}; tried again later", entry_.path, wrong);
            ctx.retry_later(entry_, "failed", wrong);
            return Outcome::finished;
        }
        local_->sync();
        local_.reset();
        if (!rename_no_replace(partial, target_)) {
            // The app wrote a file there meanwhile: look at it next time.
            remove_file(partial);
            ctx.retry_later(entry_, "to-download", "a file appeared at the path meanwhile");
            return Outcome::finished;
        }
        sync_directory(target_.parent_path());
        entry_.owned = true;
        spdlog::info("downloaded media file {} ({} bytes, sha256 {})", entry_.path, file_.size,
                     file_.sha256);
        ++ctx.step->downloaded;
        ctx.settle(entry_, "downloaded");
        return Outcome::finished;
    }

    Phase phase_ = Phase::looking_up;
    StoredMedia file_;
    fs::path target_;
    std::optional<LocalFile> local_;
    bool existing_ = false;
    Sha256 hash_;
    std::string buffer_;
    std::int64_t offset_ = 0, hashed_until_ = 0, next_chunk_ = 0;
};

}  // namespace

std::unique_ptr<Transfer> start_download(MediaEntry entry) {
    return std::make_unique<Download>(std::move(entry));
}

}  // namespace lestash
