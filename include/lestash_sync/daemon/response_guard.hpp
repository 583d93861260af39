// Watches the sockets of the daemon's Postgres connections while the sync
// worker is busy. A request that has had no byte of answer for `timeout`
// means the path to the server is dead although TCP still looks alive: a
// tunnel or proxy on the way (ssh -L, pgbouncer, a cloud SQL proxy) that
// still accepts bytes but forwards none, or a server that froze. libpq would
// wait for ever; the guard shuts the socket down, libpq reports a lost
// connection, and the worker reconnects with backoff. Deaths TCP can see
// itself are libpq's keepalives and tcp_user_timeout (with_network_defaults).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lestash {

class ResponseGuard {
  public:
    explicit ResponseGuard(std::chrono::milliseconds timeout);
    ~ResponseGuard();
    ResponseGuard(const ResponseGuard&) = delete;
    ResponseGuard& operator=(const ResponseGuard&) = delete;

    void set_timeout(std::chrono::milliseconds timeout);
    // The sockets to watch (replacing any) and the server's name for the
    // log: those the worker blocks on, as a socket counts as dead when it
    // has been quiet both ways for `timeout` while the worker is blocked in
    // poll. Sockets that are not TCP (a unix socket) are left alone.
    void watch(const std::vector<int>& sockets, const std::string& target);
    // Stops watching. The guard acts on duplicates of the sockets it was
    // given (never on the numbers, which libpq may close and the process
    // reuse at any time), so a connection is closed for good only once the
    // guard forgets it too: call it when the connection is dropped.
    void forget();
    // The worker (the calling thread) started or finished work that may
    // wait on the sockets. The guard only looks while busy, so an idle
    // daemon wakes no thread; and only while the worker is blocked in poll
    // (where libpq waits), so local work of any length is never mistaken for
    // a dead server.
    void busy(bool on);
    // How many connections it has dropped.
    std::uint64_t dropped() const;

  private:
    struct Watched {
        int fd;  // the guard's own duplicate (see watch)
        bool dropped = false;
    };
    void run();
    void check();
    void close_watched();  // with mutex_ held

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::chrono::milliseconds timeout_;
    std::vector<Watched> sockets_;
    std::string target_;
    bool busy_ = false, stopping_ = false;
    pid_t worker_ = 0;
    std::uint64_t dropped_ = 0;
    std::thread thread_;
};

}  // namespace lestash
