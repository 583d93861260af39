// Pacing the engine's writes (see write_pacer.hpp).
#include "lestash_sync/replica/write_pacer.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <thread>

namespace lestash {

namespace {

// This process's open descriptor of the file `target` describes (SQLite's
// own: the engine's connection keeps it open), or -1.
int descriptor_of(const struct stat& target) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        int fd = -1;
        if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc())
            continue;
        struct stat st {};
        if (::fstat(fd, &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino)
            return fd;
    }
    return -1;
}

}  // namespace

bool other_process_has_open(const std::string& db_path) {
    // SQLite puts the -shm beside the database's real path (symlinks resolved).
    std::error_code ec;
    const auto real = std::filesystem::canonical(db_path, ec);
    struct stat shm {};
    if (ec || ::stat((real.string() + "-shm").c_str(), &shm) != 0)
        return true;
    // Ask on a descriptor SQLite has open, never on one opened here: closing
    // any descriptor of a file drops all of the process's POSIX locks on it,
    // SQLite's included. F_GETLK reports only other processes' locks.
    const int fd = descriptor_of(shm);
    if (fd < 0)
        return true;
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = 128;  // SQLite's "DMS" byte: read-locked by every connection
    probe.l_len = 1;
    struct stat still {};
    if (::fcntl(fd, F_GETLK, &probe) != 0 || ::fstat(fd, &still) != 0 ||
        still.st_ino != shm.st_ino || still.st_dev != shm.st_dev)
        return true;  // failed, or the descriptor was closed and reused meanwhile
    return probe.l_type != F_UNLCK;
}

void WritePacer::before_write() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_write_ && (db_path_.empty() || other_process_has_open(db_path_)))
        std::this_thread::sleep_for(next_write_ - now);
}

void WritePacer::after_write(std::chrono::steady_clock::duration held) {
    using std::chrono::milliseconds;
    next_write_ =
        std::chrono::steady_clock::now() +
        std::clamp<std::chrono::steady_clock::duration>(held, milliseconds(1), milliseconds(110));
}

}  // namespace lestash
