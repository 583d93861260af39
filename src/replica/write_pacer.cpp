// Pacing the engine's writes (see write_pacer.hpp).
#include "lestash_sync/replica/write_pacer.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace lestash {

namespace {

// The kernel's inode number of the initial pid namespace (PROC_PID_INIT_INO).
constexpr const char* kInitialPidNamespace = "pid:[4026531836]";

bool in_initial_pid_namespace(const std::string& link) {
    char target[64];
    const auto n = ::readlink(link.c_str(), target, sizeof target - 1);
    return n > 0 && std::string(target, static_cast<size_t>(n)) == kInitialPidNamespace;
}

}  // namespace

bool other_process_has_open(const std::string& db_path, const LockList& list) {
    // Only the kernel's list is read: opening the -shm file to ask with
    // F_GETLK would drop SQLite's own locks on it when closed (POSIX locks
    // belong to the process and go with any of its descriptors of the file).
    struct stat st {};
    if (!in_initial_pid_namespace(list.pid_namespace) ||
        ::stat((db_path + "-shm").c_str(), &st) != 0)
        return true;
    char id[64];
    std::snprintf(id, sizeof id, "%02x:%02x:%llu", ::major(st.st_dev), ::minor(st.st_dev),
                  static_cast<unsigned long long>(st.st_ino));
    std::ifstream in(list.locks);
    if (!in)
        return true;
    const std::string me = std::to_string(::getpid());
    bool ours_seen = false;
    std::string line;
    // "1: POSIX  ADVISORY  READ 1900 fe:00:10952732 128 128"; a request
    // waiting on a lock has "->" after the number.
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string number, kind, mode, access, pid, file;
        fields >> number >> kind;
        if (kind == "->")
            fields >> kind;
        fields >> mode >> access >> pid >> file;
        if (file != id)
            continue;
        if (pid != me)
            return true;
        ours_seen = true;
    }
    return !ours_seen;
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
