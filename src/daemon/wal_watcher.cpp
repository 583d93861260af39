// inotify-based change notices for a SQLite database (see
// include/lestash_sync/daemon/wal_watcher.hpp).
#include "lestash_sync/daemon/wal_watcher.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "lestash_sync/common/error.hpp"

namespace lestash {
namespace fs = std::filesystem;

namespace {

// IN_MODIFY: a write to the database or its -wal. IN_CLOSE_WRITE: a writer
// closed it (the last close checkpoints into the database). IN_MOVED_TO: a
// database moved into place (a restore).
constexpr std::uint32_t watched_events = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO;

std::string inotify_advice(int error) {
    switch (error) {
        case ENOENT:
            return " — the directory does not exist";
        case EACCES:
            return " — check the directory's permissions";
        case ENOSPC:
            return " — too many inotify watches; raise fs.inotify.max_user_watches";
        case EMFILE:
            return " — too many inotify instances; raise fs.inotify.max_user_instances";
        default:
            return "";
    }
}

// The inotify descriptor until asio takes it over.
int watch_directory(const std::string& directory) {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        throw LocalDatabaseError("cannot watch " + directory + " for writes (inotify): " +
                                 std::strerror(error) + inotify_advice(error));
    }
    if (::inotify_add_watch(fd, directory.c_str(), watched_events | IN_ONLYDIR) < 0) {
        const int error = errno;
        ::close(fd);
        throw LocalDatabaseError("cannot watch " + directory + " for writes (inotify): " +
                                 std::strerror(error) + inotify_advice(error));
    }
    return fd;
}

}  // namespace

struct WalWatcher::State {
    State(asio::io_context& io, std::string dir, std::string database_name,
          std::function<void()> callback)
        : directory(std::move(dir)),
          stream(io),
          database(std::move(database_name)),
          wal(database + "-wal"),
          on_change(std::move(callback)) {
        const int fd = watch_directory(directory);
        try {
            stream.assign(fd);
        } catch (...) {
            ::close(fd);
            throw;
        }
    }

    // One read in flight at a time; it holds the state alive, so a watcher
    // destroyed meanwhile leaves nothing dangling.
    static void read_events(const std::shared_ptr<State>& state) {
        state->stream.async_read_some(
            asio::buffer(state->buffer), [state](std::error_code ec, std::size_t size) {
                if (state->stopped || ec == asio::error::operation_aborted)
                    return;
                if (ec) {
                    spdlog::error(
                        "stopped watching {} for writes: {} — local writes are noticed only by "
                        "the periodic safety sync until the daemon restarts",
                        state->directory, ec.message());
                    return;
                }
                if (state->concerns(size))
                    state->on_change();
                if (!state->stopped)
                    read_events(state);
            });
    }

    // Whether any event in buffer[0, size) concerns our files (or may have:
    // after a queue overflow the kernel dropped events we cannot see).
    bool concerns(std::size_t size) const {
        bool relevant = false;
        for (std::size_t offset = 0; offset + sizeof(inotify_event) <= size;) {
            inotify_event event;
            std::memcpy(&event, buffer.data() + offset, sizeof event);
            const char* name = buffer.data() + offset + sizeof event;
            offset += sizeof event + event.len;
            if (event.mask & IN_Q_OVERFLOW)
                relevant = true;
            if (event.mask & IN_IGNORED)
                spdlog::warn("{} was removed or unmounted: writes there are no longer noticed",
                             directory);
            if (event.len == 0 || offset > size)
                continue;
            const std::string file(name, ::strnlen(name, event.len));
            if (file == database || file == wal)
                relevant = true;
        }
        return relevant;
    }

    std::string directory;
    asio::posix::stream_descriptor stream;
    std::string database, wal;
    std::function<void()> on_change;
    bool stopped = false;
    alignas(inotify_event) std::array<char, std::size_t{16} * 1024> buffer{};
};

WalWatcher::WalWatcher(asio::io_context& io, const std::string& database_path,
                       std::function<void()> on_change) {
    // SQLite follows a symbolic link and keeps its -wal beside the target.
    std::error_code ec;
    fs::path path = fs::weakly_canonical(fs::absolute(database_path), ec);
    if (ec)
        path = fs::absolute(database_path);
    state_ = std::make_shared<State>(io, path.parent_path().string(), path.filename().string(),
                                     std::move(on_change));
    State::read_events(state_);
}

WalWatcher::~WalWatcher() {
    state_->stopped = true;
    std::error_code ignored;
    state_->stream.close(ignored);  // the read in flight completes as aborted
}

const std::string& WalWatcher::directory() const {
    return state_->directory;
}

}  // namespace lestash
