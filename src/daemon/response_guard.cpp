// The no-answer guard on the Postgres sockets (see response_guard.hpp).
#include "lestash_sync/daemon/response_guard.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

namespace lestash {
namespace {

struct Quiet {
    std::chrono::milliseconds since_sent, since_received;
};

// How long ago `fd` last sent and last received data, by the kernel's clocks
// (bytes count when they arrive, not when libpq reads them); nothing when the
// socket is not TCP, or no longer an open connection (the server closed it,
// or TCP gave up on it: libpq has seen or will see that itself).
std::optional<Quiet> quiet_for(int fd) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
        info.tcpi_state != TCP_ESTABLISHED)
        return std::nullopt;
    return Quiet{std::chrono::milliseconds(info.tcpi_last_data_sent),
                 std::chrono::milliseconds(info.tcpi_last_data_recv)};
}

// Whether thread `tid` of this process is blocked in poll or select, which
// is where libpq waits for the server (SQLite sleeps, it never polls);
// nothing when the kernel does not say.
std::optional<bool> blocked_in_poll(pid_t tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
    std::string first;
    if (!(in >> first))
        return std::nullopt;
    if (first == "running")
        return false;
    long number = -1;
    try {
        number = std::stol(first);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    for (const long waiting : {
#ifdef SYS_poll
             long{SYS_poll},
#endif
#ifdef SYS_select
             long{SYS_select},
#endif
             long{SYS_ppoll}, long{SYS_pselect6}})
        if (number == waiting)
            return true;
    return false;
}

// How long the worker has waited on `fd` with no byte coming: while it is
// blocked in poll, the time since anything went either way. Without /proc,
// the time since the last send when nothing came after it; the clocks tick
// in jiffies, so a request sent in the tick its answer came counts as
// unanswered, and local work that long after it costs one reconnect.
std::optional<std::chrono::milliseconds> waited_on(int fd, pid_t worker) {
    const auto quiet = quiet_for(fd);
    if (!quiet)
        return std::nullopt;
    const auto polling = blocked_in_poll(worker);
    if (polling)
        return *polling ? std::optional(std::min(quiet->since_sent, quiet->since_received))
                        : std::nullopt;
    if (quiet->since_sent > quiet->since_received)
        return std::nullopt;
    return quiet->since_sent;
}

}  // namespace

ResponseGuard::ResponseGuard(std::chrono::milliseconds timeout) : timeout_(timeout) {
    thread_ = std::thread([this] { run(); });
}

ResponseGuard::~ResponseGuard() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    close_watched();
}

void ResponseGuard::set_timeout(std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> lock(mutex_);
    timeout_ = timeout;
}

void ResponseGuard::watch(const std::vector<int>& sockets, const std::string& target) {
    std::lock_guard<std::mutex> lock(mutex_);
    close_watched();
    for (const int fd : sockets) {
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        // The guard's own descriptor of the socket: libpq closes its fd when
        // it finds the connection lost, on the worker's thread and without a
        // word to the guard, and the number can then name another file at
        // once. Shutting down this duplicate cuts the same connection, and
        // only the guard ever closes it.
        const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (own >= 0)
            sockets_.push_back({own});
        else
            spdlog::warn("cannot watch the connection to Postgres at {} for a missing answer: {}",
                         target, std::strerror(errno));
    }
    target_ = target;
    wake_.notify_one();
}

void ResponseGuard::forget() {
    std::lock_guard<std::mutex> lock(mutex_);
    close_watched();
}

void ResponseGuard::close_watched() {
    for (const auto& s : sockets_) ::close(s.fd);
    sockets_.clear();
}

void ResponseGuard::busy(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (busy_ == on)
        return;
    busy_ = on;
    if (on)
        worker_ = static_cast<pid_t>(::syscall(SYS_gettid));
    if (on && !sockets_.empty())
        wake_.notify_one();
}

std::uint64_t ResponseGuard::dropped() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return dropped_;
}

void ResponseGuard::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        if (!busy_ || sockets_.empty()) {
            wake_.wait(lock);
            continue;
        }
        // Looked at a few times per timeout: a drop comes within 1.25 x timeout.
        const auto every = std::clamp<std::chrono::milliseconds>(
            timeout_ / 4, std::chrono::milliseconds(50), std::chrono::seconds(5));
        wake_.wait_for(lock, every);
        if (!stopping_ && busy_)
            check();
    }
}

void ResponseGuard::check() {
    for (auto& s : sockets_) {
        if (s.dropped)
            continue;
        const auto waited = waited_on(s.fd, worker_);
        if (!waited || *waited < timeout_)
            continue;
        spdlog::warn(
            "no answer from Postgres at {} for {} s: dropping the connection (the network, or a "
            "tunnel or proxy on the way, is not passing anything); reconnecting with backoff",
            target_, std::chrono::duration_cast<std::chrono::seconds>(*waited).count());
        ::shutdown(s.fd, SHUT_RDWR);
        s.dropped = true;
        ++dropped_;
    }
}

}  // namespace lestash
