// The fault-injecting TCP proxy (see fault_proxy.hpp). One thread owns every
// socket and runs a poll loop; the public methods take the mutex, change what
// the loop is to do and wake it through an eventfd. The loop holds the mutex
// except while it sleeps in poll, so every state change is seen whole.
#include "fault_proxy.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

namespace lestash::test {
namespace {

using Clock = std::chrono::steady_clock;
// Bytes read and not yet forwarded, per direction; reading pauses above it.
constexpr std::size_t kBufferCap = 256 * 1024;
// Random faults: the largest offset of a random cut, the range of a stall.
constexpr std::uint64_t kRandomCutMaxBytes = 16 * 1024;
constexpr int kRandomStallMinMs = 100, kRandomStallMaxMs = 1000;

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("fault proxy: " + what + ": " + std::strerror(errno));
}

void set_nodelay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Closes with RST rather than FIN: the peer sees "connection reset by peer".
void close_with_reset(int& fd) {
    if (fd < 0)
        return;
    const linger hard{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(fd);
    fd = -1;
}

std::uint32_t big_endian_32(const char* p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
           std::uint32_t{u[3]};
}

enum Dir { kUp = 0, kDown = 1 };  // client -> server, server -> client

// What the Postgres wire protocol is doing on one connection: messages are
// parsed from the bytes as the proxy reads them, and their effect is applied
// as the proxy forwards them, so at a cut it knows what the cut interrupted
// (the peers have seen exactly the forwarded bytes). Gives up on what it
// cannot read (TLS, GSS encryption, garbage).
class WireTracker {
  public:
    WireTracker() { streams_[kUp].typed = false; }

    void read(Dir d, const char* data, std::size_t n) {
        Stream& s = streams_[d];
        for (std::size_t i = 0; i < n && !broken_;) {
            if (d == kDown && encryption_answers_ > 0 && !s.in_message && s.head.empty()) {
                // The one-byte answer to SSLRequest/GSSENCRequest: 'N' means plain text.
                broken_ = data[i] != 'N';
                --encryption_answers_;
                ++i, ++s.offset;
                continue;
            }
            if (!s.in_message) {
                const std::size_t header = s.typed ? 5 : 4;
                const std::size_t take = std::min(header - s.head.size(), n - i);
                s.head.append(data + i, take);
                i += take, s.offset += take;
                if (s.head.size() < header)
                    continue;
                const std::uint32_t length = big_endian_32(s.head.data() + header - 4);
                if (length < 4) {
                    broken_ = true;
                    break;
                }
                s.type = s.typed ? s.head[0] : '\0';
                s.start = s.offset - header;
                s.body_left = length - 4;
                s.prefix.clear();
                s.in_message = true;
                on_header(d, s);
            }
            const std::size_t take =
                static_cast<std::size_t>(std::min<std::uint64_t>(s.body_left, n - i));
            if (s.prefix.size() < kPrefix)
                s.prefix.append(data + i, std::min(take, kPrefix - s.prefix.size()));
            i += take, s.offset += take, s.body_left -= take;
            if (s.body_left == 0) {
                on_complete(d, s);
                s.in_message = false;
                s.head.clear();
            }
        }
        apply_up_to(d);
    }

    void forwarded(Dir d, std::uint64_t total) {
        streams_[d].forwarded = total;
        apply_up_to(d);
    }

    bool in_copy() const {
        return !broken_ &&
               (copy_in_ || copy_out_ || streams_[kUp].copy_data || streams_[kDown].copy_data);
    }
    bool in_commit() const { return !broken_ && commit_ != Commit::none; }
    bool commit_in_doubt() const { return !broken_ && commit_ == Commit::sent; }

  private:
    static constexpr std::size_t kPrefix = 16;
    enum class Event {
        commit_begins,
        commit_sent,
        ready,
        copy_in_begins,
        copy_in_ends,
        copy_out_begins,
        copy_out_ends,
        copy_data_begins,
        copy_data_ends,
    };
    enum class Commit { none, sending, sent };
    struct Stream {
        bool typed = true;  // false while the client is in its startup phase
        std::uint64_t offset = 0, forwarded = 0;
        bool in_message = false;
        std::string head, prefix;
        char type = '\0';
        std::uint64_t start = 0, body_left = 0;
        bool copy_data = false;
        std::deque<std::pair<std::uint64_t, Event>> events;  // at forward offset
    };

    // Message boundaries known from the header: events at the first byte
    // after the type and at the end.
    void on_header(Dir d, Stream& s) {
        const std::uint64_t end = s.offset + s.body_left;
        if (s.type == 'd') {
            s.events.emplace_back(s.start + 1, Event::copy_data_begins);
            s.events.emplace_back(end, Event::copy_data_ends);
        } else if (d == kUp && (s.type == 'c' || s.type == 'f')) {
            s.events.emplace_back(end, Event::copy_in_ends);
        } else if (d == kDown) {
            switch (s.type) {
                case 'G':
                    s.events.emplace_back(end, Event::copy_in_begins);
                    break;
                case 'H':
                    s.events.emplace_back(end, Event::copy_out_begins);
                    break;
                case 'c':
                    s.events.emplace_back(end, Event::copy_out_ends);
                    break;
                case 'Z':
                    s.events.emplace_back(end, Event::ready);
                    break;
                default:
                    break;
            }
        }
    }

    void on_complete(Dir d, Stream& s) {
        if (d == kUp && !s.typed) {
            // Startup phase: SSLRequest, GSSENCRequest, StartupMessage, CancelRequest.
            const std::uint32_t code = s.prefix.size() >= 4 ? big_endian_32(s.prefix.data()) : 0;
            if (code == 80877103 || code == 80877104)
                ++encryption_answers_;
            else
                s.typed = true;
            return;
        }
        if (d == kUp && s.type == 'Q' && is_commit(s.prefix)) {
            s.events.emplace_back(s.start + 1, Event::commit_begins);
            s.events.emplace_back(s.offset, Event::commit_sent);
        }
    }

    static bool is_commit(const std::string& query) {
        std::size_t i = 0;
        while (i < query.size() && std::isspace(static_cast<unsigned char>(query[i]))) ++i;
        static constexpr std::string_view kCommit = "commit";
        if (query.size() - i < kCommit.size())
            return false;
        for (std::size_t k = 0; k < kCommit.size(); ++k)
            if (std::tolower(static_cast<unsigned char>(query[i + k])) != kCommit[k])
                return false;
        return true;
    }

    void apply_up_to(Dir d) {
        Stream& s = streams_[d];
        while (!s.events.empty() && s.events.front().first <= s.forwarded) {
            apply(s, s.events.front().second);
            s.events.pop_front();
        }
    }

    void apply(Stream& s, Event e) {
        switch (e) {
            case Event::commit_begins:
                commit_ = Commit::sending;
                break;
            case Event::commit_sent:
                commit_ = Commit::sent;
                break;
            case Event::ready:
                if (commit_ == Commit::sent)
                    commit_ = Commit::none;
                copy_in_ = copy_out_ = false;
                break;
            case Event::copy_in_begins:
                copy_in_ = true;
                break;
            case Event::copy_in_ends:
                copy_in_ = false;
                break;
            case Event::copy_out_begins:
                copy_out_ = true;
                break;
            case Event::copy_out_ends:
                copy_out_ = false;
                break;
            case Event::copy_data_begins:
                s.copy_data = true;
                break;
            case Event::copy_data_ends:
                s.copy_data = false;
                break;
        }
    }

    Stream streams_[2];
    int encryption_answers_ = 0;
    bool broken_ = false;
    bool copy_in_ = false, copy_out_ = false;
    Commit commit_ = Commit::none;
};

// Bytes read from one side and not yet written to the other.
class Buffer {
  public:
    std::size_t size() const { return data_.size() - head_; }
    bool empty() const { return size() == 0; }
    const char* front() const { return data_.data() + head_; }
    void append(const char* p, std::size_t n) { data_.append(p, n); }
    void consume(std::size_t n) {
        head_ += n;
        if (head_ == data_.size()) {
            data_.clear();
            head_ = 0;
        } else if (head_ > 64 * 1024 && head_ > data_.size() / 2) {
            data_.erase(0, head_);
            head_ = 0;
        }
    }

  private:
    std::string data_;
    std::size_t head_ = 0;
};

struct Connection {
    enum class State { held, connecting, open, closed };
    State state = State::held;
    int fd[2] = {-1, -1};                // [kUp] reads from the client, [kDown] from the server
    Buffer pending[2];                   // [kUp]: to the server, [kDown]: to the client
    bool eof[2] = {false, false};        // the source side said FIN
    bool shut_down[2] = {false, false};  // FIN passed on to the destination
    bool failed = false;                 // a peer reset or an I/O error
    std::uint64_t forwarded[2] = {0, 0};
    std::optional<std::uint64_t> cut_after;  // bytes still forwarded before a cut
    WireTracker wire;

    int source(Dir d) const { return fd[d]; }
    int destination(Dir d) const { return fd[d == kUp ? kDown : kUp]; }
};

}  // namespace

struct FaultProxy::Impl {
    sockaddr_storage upstream{};
    socklen_t upstream_length = 0;
    int listen_fd = -1, wake_fd = -1;
    std::uint16_t port = 0;

    mutable std::mutex mutex;
    std::mt19937_64 rng;
    Stats stats;
    std::list<Connection> connections;  // stable addresses for the poll table
    bool stopping = false, blackhole = false, down = false, cut_all_requested = false;
    struct PendingCut {
        std::uint64_t max_bytes;
        bool random;  // dropped when random faults are turned off
    };
    std::deque<PendingCut> cuts_for_new;  // for the next new connections
    int commits_to_cut = 0;
    int responses_to_cut = 0;
    Clock::time_point stall_until{};
    std::chrono::milliseconds random_period{0};
    Clock::time_point next_random_fault = Clock::time_point::max();
    std::thread thread;

    void wake() const {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(wake_fd, &one, sizeof one);
    }
    bool stalled(Clock::time_point now) const { return now < stall_until; }
    std::uint64_t uniform(std::uint64_t max) {
        return std::uniform_int_distribution<std::uint64_t>(0, max)(rng);
    }
    void schedule_random_fault(Clock::time_point now) {
        if (random_period.count() <= 0) {
            next_random_fault = Clock::time_point::max();
            return;
        }
        std::exponential_distribution<double> gap(1.0 / static_cast<double>(random_period.count()));
        next_random_fault =
            now + std::chrono::microseconds(static_cast<std::int64_t>(gap(rng) * 1000));
    }
    void begin_stall(std::chrono::milliseconds duration) {
        stall_until = Clock::now() + duration;
        if (duration.count() > 0)
            ++stats.stalls;
    }
    void arm_cuts(std::uint64_t max_bytes, int new_ones, bool random) {
        for (auto& c : connections)
            if (c.state != Connection::State::closed)
                c.cut_after = uniform(max_bytes);
        for (int i = 0; i < new_ones; ++i) cuts_for_new.push_back({max_bytes, random});
    }

    void run();
    // The descriptors to poll now, and the connection each belongs to.
    void watch(Clock::time_point now, std::vector<pollfd>& fds, std::vector<Connection*>& owners);
    // Until the next random fault or the end of a stall; -1: none due.
    int poll_timeout(Clock::time_point now) const;
    // What the poll found: requested cuts, a random fault, each ready
    // connection served, held bytes forwarded, armed cuts made, new clients.
    void handle(const std::vector<pollfd>& fds, const std::vector<Connection*>& owners,
                Clock::time_point after);
    void accept_all();
    void start_upstream(Connection& c);
    void serve(Connection& c, const pollfd* p, Clock::time_point now);
    void read_from(Connection& c, Dir d);
    void forward(Connection& c, Dir d);
    void cut(Connection& c, bool by_fault);
    void close_gracefully(Connection& c);
    void random_fault();
};

FaultProxy::FaultProxy(std::string upstream_host, std::uint16_t upstream_port, std::uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
    auto& m = *impl_;
    m.rng.seed(seed);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc =
        ::getaddrinfo(upstream_host.c_str(), std::to_string(upstream_port).c_str(), &hints, &found);
    if (rc != 0 || !found)
        throw std::runtime_error("fault proxy: cannot resolve " + upstream_host + ": " +
                                 ::gai_strerror(rc));
    std::memcpy(&m.upstream, found->ai_addr, found->ai_addrlen);
    m.upstream_length = found->ai_addrlen;
    ::freeaddrinfo(found);

    m.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m.listen_fd < 0)
        fail("socket");
    const int one = 1;
    ::setsockopt(m.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (::bind(m.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(m.listen_fd, 128) != 0 ||
        ::getsockname(m.listen_fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
        ::close(m.listen_fd);
        fail("listen on 127.0.0.1");
    }
    m.port = ntohs(addr.sin_port);
    m.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m.wake_fd < 0) {
        ::close(m.listen_fd);
        fail("eventfd");
    }
    m.thread = std::thread([&m] { m.run(); });
}

FaultProxy::~FaultProxy() {
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake();
    impl_->thread.join();
    ::close(impl_->listen_fd);
    ::close(impl_->wake_fd);
}

std::uint16_t FaultProxy::port() const {
    return impl_->port;
}

std::string FaultProxy::host_port_conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(impl_->port);
}

void FaultProxy::cut_all() {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->cut_all_requested = true;
    impl_->wake();
}

void FaultProxy::cut_at_random_offset(std::uint64_t max_bytes, int connections) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->arm_cuts(max_bytes, connections, false);
    impl_->wake();
}

void FaultProxy::cut_after_commits(int commits) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->commits_to_cut = commits;
}

void FaultProxy::cut_responses(int responses) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->responses_to_cut = responses;
}

void FaultProxy::stall(std::chrono::milliseconds duration) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->begin_stall(duration);
    impl_->wake();
}

void FaultProxy::set_blackhole(bool on) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->blackhole && !on)
        impl_->cut_all_requested = true;  // the held connections are dead by now
    impl_->blackhole = on;
    impl_->wake();
}

void FaultProxy::set_down(bool down) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->down = down;
    if (down)
        impl_->cut_all_requested = true;
    impl_->wake();
}

void FaultProxy::set_random_faults(std::chrono::milliseconds mean_period) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->random_period = mean_period;
    if (mean_period.count() <= 0)
        std::erase_if(impl_->cuts_for_new, [](const auto& cut) { return cut.random; });
    impl_->schedule_random_fault(Clock::now());
    impl_->wake();
}

FaultProxy::Stats FaultProxy::stats() const {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    return impl_->stats;
}

void FaultProxy::Impl::run() {
    std::unique_lock<std::mutex> lock(mutex);
    std::vector<pollfd> fds;
    std::vector<Connection*> owners;  // fds[i] belongs to owners[i] (nullptr: ours)
    while (!stopping) {
        const auto now = Clock::now();
        watch(now, fds, owners);
        const int timeout = poll_timeout(now);
        lock.unlock();
        const int ready = ::poll(fds.data(), fds.size(), timeout);
        lock.lock();
        if (ready < 0 && errno != EINTR)
            break;
        if (stopping)
            break;
        if (fds[0].revents & POLLIN) {
            std::uint64_t count;
            [[maybe_unused]] const auto n = ::read(wake_fd, &count, sizeof count);
        }
        handle(fds, owners, Clock::now());
    }
    for (auto& c : connections)
        if (c.state != Connection::State::closed)
            cut(c, false);
    connections.clear();
}

void FaultProxy::Impl::watch(Clock::time_point now, std::vector<pollfd>& fds,
                             std::vector<Connection*>& owners) {
    fds.assign({{wake_fd, POLLIN, 0}, {listen_fd, POLLIN, 0}});
    owners.assign({nullptr, nullptr});
    const bool hold_all = blackhole, hold_bytes = stalled(now);
    for (auto& c : connections) {
        if (hold_all || c.state == Connection::State::held)
            continue;  // not even errors: a dead network tells nothing
        for (const Dir d : {kUp, kDown}) {
            short events = 0;
            if (c.state == Connection::State::connecting) {
                if (d == kDown)
                    events = POLLOUT;  // the connect completing
                else if (!c.eof[kUp] && c.pending[kUp].size() < kBufferCap)
                    events = POLLIN;
            } else {
                if (!c.eof[d] && c.pending[d].size() < kBufferCap)
                    events |= POLLIN;
                const Dir other = d == kUp ? kDown : kUp;
                if (!hold_bytes && !c.pending[other].empty())
                    events |= POLLOUT;  // fd[d] is the destination of `other`
            }
            if (events != 0) {
                fds.push_back({c.fd[d], events, 0});
                owners.push_back(&c);
            }
        }
    }
}

int FaultProxy::Impl::poll_timeout(Clock::time_point now) const {
    auto wake_at = next_random_fault;
    if (stalled(now))
        wake_at = std::min(wake_at, stall_until);
    if (wake_at == Clock::time_point::max())
        return -1;
    return static_cast<int>(std::max<std::int64_t>(
        0, std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count()));
}

void FaultProxy::Impl::handle(const std::vector<pollfd>& fds,
                              const std::vector<Connection*>& owners, Clock::time_point after) {
    // Requests first: a connection cut here is skipped below.
    if (cut_all_requested) {
        cut_all_requested = false;
        for (auto& c : connections)
            if (c.state != Connection::State::closed)
                cut(c, true);
    }
    if (after >= next_random_fault) {
        random_fault();
        schedule_random_fault(after);
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0 || owners[i]->state == Connection::State::closed)
            continue;
        serve(*owners[i], &fds[i], after);
    }
    // Bytes held by a stall that just ended, and cuts armed at zero.
    for (auto& c : connections) {
        if (c.state == Connection::State::open && !blackhole && !stalled(after))
            for (const Dir d : {kUp, kDown}) forward(c, d);
        if (c.state != Connection::State::closed && c.state != Connection::State::held &&
            c.cut_after == std::uint64_t{0})
            cut(c, true);
        if (c.state != Connection::State::closed && c.failed)
            cut(c, false);
    }
    if (fds[1].revents & POLLIN)
        accept_all();
    connections.remove_if([](const Connection& c) { return c.state == Connection::State::closed; });
}

void FaultProxy::Impl::accept_all() {
    for (;;) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;  // EAGAIN, or an aborted handshake
        if (down) {
            int closing = fd;
            close_with_reset(closing);
            ++stats.refused;
            continue;
        }
        ++stats.connections;
        set_nodelay(fd);
        Connection& c = connections.emplace_back();
        c.fd[kUp] = fd;
        if (!cuts_for_new.empty()) {
            c.cut_after = uniform(cuts_for_new.front().max_bytes);
            cuts_for_new.pop_front();
        }
        if (blackhole)
            continue;  // held: no upstream, nothing read, nothing closed
        start_upstream(c);
        if (c.state != Connection::State::closed && c.cut_after == std::uint64_t{0})
            cut(c, true);
    }
}

void FaultProxy::Impl::start_upstream(Connection& c) {
    c.fd[kDown] = ::socket(upstream.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd[kDown] < 0) {
        cut(c, false);
        return;
    }
    set_nodelay(c.fd[kDown]);
    if (::connect(c.fd[kDown], reinterpret_cast<const sockaddr*>(&upstream), upstream_length) == 0)
        c.state = Connection::State::open;
    else if (errno == EINPROGRESS)
        c.state = Connection::State::connecting;
    else
        cut(c, false);  // the client sees a reset, as if the server had refused
}

void FaultProxy::Impl::serve(Connection& c, const pollfd* p, Clock::time_point now) {
    const Dir side = p->fd == c.fd[kUp] ? kUp : kDown;
    if (c.state == Connection::State::connecting && side == kDown) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(c.fd[kDown], SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
            c.failed = true;
            return;
        }
        c.state = Connection::State::open;
    }
    if (p->revents & (POLLIN | POLLHUP | POLLERR))
        read_from(c, side);
    if (c.state == Connection::State::open && !blackhole && !stalled(now))
        for (const Dir d : {kUp, kDown}) forward(c, d);
}

void FaultProxy::Impl::read_from(Connection& c, Dir d) {
    char chunk[64 * 1024];
    while (!c.eof[d] && c.pending[d].size() < kBufferCap) {
        const std::size_t room = std::min(sizeof chunk, kBufferCap - c.pending[d].size());
        const ssize_t n = ::recv(c.source(d), chunk, room, 0);
        if (n > 0) {
            if (d == kDown && responses_to_cut > 0 && c.pending[kDown].empty() &&
                c.pending[kUp].empty()) {
                --responses_to_cut;  // a new answer: it never reaches the client
                c.cut_after = 0;
                return;
            }
            c.pending[d].append(chunk, static_cast<std::size_t>(n));
            c.wire.read(d, chunk, static_cast<std::size_t>(n));
        } else if (n == 0) {
            c.eof[d] = true;
        } else if (errno == EINTR) {
            continue;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c.failed = true;
            return;
        }
    }
}

void FaultProxy::Impl::forward(Connection& c, Dir d) {
    Buffer& b = c.pending[d];
    while (!b.empty() && !c.failed) {
        std::size_t n = b.size();
        if (c.cut_after)
            n = static_cast<std::size_t>(std::min<std::uint64_t>(n, *c.cut_after));
        if (n == 0)
            return;  // the cut comes at the end of this loop turn
        const ssize_t sent = ::send(c.destination(d), b.front(), n, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c.failed = true;
            return;
        }
        const auto count = static_cast<std::uint64_t>(sent);
        b.consume(static_cast<std::size_t>(sent));
        c.forwarded[d] += count;
        (d == kUp ? stats.bytes_up : stats.bytes_down) += count;
        c.wire.forwarded(d, c.forwarded[d]);
        if (c.cut_after)
            *c.cut_after -= count;
        if (d == kUp && commits_to_cut > 0 && c.wire.commit_in_doubt()) {
            --commits_to_cut;
            c.cut_after = 0;  // nothing more either way: cut at the end of this turn
            return;
        }
    }
    // A FIN passes on once everything before it has.
    if (b.empty() && c.eof[d] && !c.shut_down[d] && !c.failed) {
        ::shutdown(c.destination(d), SHUT_WR);
        c.shut_down[d] = true;
        if (c.shut_down[kUp] && c.shut_down[kDown])
            close_gracefully(c);
    }
}

void FaultProxy::Impl::cut(Connection& c, bool by_fault) {
    if (by_fault) {
        ++stats.cuts;
        stats.cuts_in_copy += c.wire.in_copy() ? 1 : 0;
        stats.cuts_in_commit += c.wire.in_commit() ? 1 : 0;
        stats.cuts_commit_in_doubt += c.wire.commit_in_doubt() ? 1 : 0;
    }
    close_with_reset(c.fd[kUp]);
    close_with_reset(c.fd[kDown]);
    c.state = Connection::State::closed;
}

void FaultProxy::Impl::close_gracefully(Connection& c) {
    for (int& fd : c.fd) {
        ::close(fd);
        fd = -1;
    }
    c.state = Connection::State::closed;
}

void FaultProxy::Impl::random_fault() {
    switch (uniform(2)) {
        case 0:
            for (auto& c : connections)
                if (c.state != Connection::State::closed)
                    cut(c, true);
            break;
        case 1:
            arm_cuts(uniform(kRandomCutMaxBytes), 1, true);
            break;
        default:
            begin_stall(std::chrono::milliseconds(
                kRandomStallMinMs +
                static_cast<int>(uniform(kRandomStallMaxMs - kRandomStallMinMs))));
            break;
    }
}

}  // namespace lestash::test
