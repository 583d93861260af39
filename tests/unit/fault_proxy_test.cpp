// The test-only fault proxy itself, against a small echo server and a
// scripted stand-in for Postgres on loopback: it forwards bytes intact both
// ways, and each fault does what it says (cuts within the bound, stalls hold
// and then deliver, down refuses, the blackhole holds and then cuts), and it
// tells a cut inside a COMMIT or a COPY from the protocol bytes.
#include "fault_proxy.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "daemon_process.hpp"  // eventually()

namespace lestash::test {
namespace {

using namespace std::chrono_literals;

// One owned socket.
class Socket {
  public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    ~Socket() { reset(); }
    Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Socket& operator=(Socket&& o) noexcept {
        reset();
        std::swap(fd_, o.fd_);
        return *this;
    }
    int fd() const { return fd_; }
    void reset() {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_;
};

Socket listen_on_loopback(std::uint16_t& port) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    REQUIRE(::bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(s.fd(), 16) == 0);
    REQUIRE(::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &length) == 0);
    port = ntohs(addr.sin_port);
    return s;
}

// A blocking client socket and connect()'s errno (0: connected); a receive
// timeout so a broken proxy fails the test instead of hanging it.
std::pair<Socket, int> try_connect(std::uint16_t port) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const int error =
        ::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
    const timeval tv{60, 0};
    ::setsockopt(s.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return {std::move(s), error};
}

Socket connect_to(std::uint16_t port) {
    auto [s, error] = try_connect(port);
    INFO("connect to 127.0.0.1:" << port << ": " << std::strerror(error));
    REQUIRE(error == 0);
    return std::move(s);
}

// These two never assert: they also run on helper threads (Catch is not
// thread-safe); callers check the result.
bool try_send_all(int fd, const std::string& data) {
    for (std::size_t at = 0; at < data.size();) {
        const auto n = ::send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        at += static_cast<std::size_t>(n);
    }
    return true;
}

// Up to `size` bytes: fewer when the connection ends or times out first.
std::string receive_up_to(int fd, std::size_t size) {
    std::string out(size, '\0');
    std::size_t at = 0;
    while (at < size) {
        const auto n = ::recv(fd, out.data() + at, size - at, 0);
        if (n <= 0)
            break;
        at += static_cast<std::size_t>(n);
    }
    out.resize(at);
    return out;
}

void send_all(int fd, const std::string& data) {
    REQUIRE(try_send_all(fd, data));
}

std::string receive_exactly(int fd, std::size_t size) {
    auto out = receive_up_to(fd, size);
    REQUIRE(out.size() == size);
    return out;
}

// Reads until the connection ends; returns the bytes and how it ended
// (0: FIN, else the errno, e.g. ECONNRESET).
std::pair<std::string, int> receive_until_end(int fd) {
    std::string out;
    char chunk[16384];
    for (;;) {
        const auto n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n > 0) {
            out.append(chunk, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return {out, n == 0 ? 0 : errno};
    }
}

// True when nothing is readable within `wait` (a check on what did NOT
// happen while a fault holds everything; the fault lasts far longer).
bool nothing_arrives(int fd, std::chrono::milliseconds wait) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(wait.count())) == 0;
}

std::string random_bytes(std::size_t size, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string out(size, '\0');
    for (auto& c : out) c = static_cast<char>(rng());
    return out;
}

// Echoes every connection back to itself, one thread per connection.
class EchoServer {
  public:
    EchoServer() : listener_(listen_on_loopback(port_)) {
        thread_ = std::thread([this] {
            for (;;) {
                const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
                if (fd < 0)
                    return;  // shut down
                std::lock_guard<std::mutex> lock(mutex_);
                fds_.push_back(fd);
                workers_.emplace_back([fd] {
                    char chunk[16384];
                    for (;;) {
                        const auto n = ::recv(fd, chunk, sizeof chunk, 0);
                        if (n <= 0 ||
                            ::send(fd, chunk, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n)
                            break;
                    }
                    ::shutdown(fd, SHUT_WR);
                });
            }
        });
    }
    ~EchoServer() {
        ::shutdown(listener_.fd(), SHUT_RDWR);
        thread_.join();
        std::lock_guard<std::mutex> lock(mutex_);
        for (const int fd : fds_) ::shutdown(fd, SHUT_RDWR);
        for (auto& w : workers_) w.join();
        for (const int fd : fds_) ::close(fd);
    }
    std::uint16_t port() const { return port_; }

  private:
    std::uint16_t port_ = 0;
    Socket listener_;
    std::thread thread_;
    std::mutex mutex_;
    std::vector<int> fds_;
    std::vector<std::thread> workers_;
};

// Sends `data` on one thread while reading the echo on this one; returns
// the echo, short if the connection failed.
std::string echo_round_trip(int fd, const std::string& data) {
    std::thread writer([&] { try_send_all(fd, data); });
    auto back = receive_up_to(fd, data.size());
    writer.join();
    return back;
}

// Postgres protocol messages, as libpq writes them.
std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
            static_cast<char>(v)};
}
std::string untyped(const std::string& body) {
    return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}
std::string message(char type, const std::string& body) {
    return type + untyped(body);
}
std::string query(const std::string& sql) {
    return message('Q', sql + '\0');
}
const std::string kSslRequest = untyped(be32(80877103));
const std::string kStartup = untyped(be32(196608) + std::string("user\0me\0\0", 10));
const std::string kReady = message('Z', "I");

}  // namespace

TEST_CASE("the fault proxy forwards bytes both ways intact and counts them", "[fault_proxy]") {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port(), 1);
    CHECK(proxy.host_port_conninfo() == "host=127.0.0.1 port=" + std::to_string(proxy.port()));
    auto first = connect_to(proxy.port());
    auto second = connect_to(proxy.port());
    const auto a = random_bytes(1 << 20, 1), b = random_bytes(300000, 2);
    std::string back_b;
    std::thread other([&] { back_b = echo_round_trip(second.fd(), b); });
    const auto back_a = echo_round_trip(first.fd(), a);
    other.join();
    CHECK(back_a == a);
    CHECK(back_b == b);

    // A FIN passes through: the echo server closes after ours.
    ::shutdown(first.fd(), SHUT_WR);
    const auto [rest, how] = receive_until_end(first.fd());
    CHECK(rest.empty());
    CHECK(how == 0);

    const auto s = proxy.stats();
    CHECK(s.connections == 2);
    CHECK(s.bytes_up == a.size() + b.size());
    CHECK(s.bytes_down == a.size() + b.size());
    CHECK(s.cuts == 0);
    CHECK(s.stalls == 0);
    CHECK(s.refused == 0);
}

TEST_CASE("a cut at a random offset lands within the bound, at varying offsets, with a reset",
          "[fault_proxy]") {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port(), 42);
    constexpr std::uint64_t bound = 4096;
    std::set<std::uint64_t> offsets;
    for (int i = 0; i < 12; ++i) {
        const auto before = proxy.stats();
        proxy.cut_at_random_offset(bound, 1);  // for the next new connection
        auto c = connect_to(proxy.port());
        std::thread writer([&] {
            const auto data = random_bytes(64 * 1024, static_cast<std::uint64_t>(i));
            for (std::size_t at = 0; at < data.size();) {
                const auto n = ::send(c.fd(), data.data() + at, data.size() - at, MSG_NOSIGNAL);
                if (n <= 0)
                    return;  // cut
                at += static_cast<std::size_t>(n);
            }
        });
        const auto [received, how] = receive_until_end(c.fd());
        writer.join();
        const auto after = proxy.stats();
        const auto forwarded =
            after.bytes_up + after.bytes_down - before.bytes_up - before.bytes_down;
        INFO("connection " << i << ": forwarded " << forwarded << ", received " << received.size());
        CHECK(after.cuts == before.cuts + 1);
        CHECK(forwarded <= bound);
        CHECK(received.size() <= after.bytes_down - before.bytes_down);
        CHECK(how == ECONNRESET);
        offsets.insert(forwarded);
    }
    CHECK(offsets.size() > 1);
    // Armed on an open connection too: it goes down within the bound.
    auto open = connect_to(proxy.port());
    CHECK(echo_round_trip(open.fd(), "hello") == "hello");
    const auto before = proxy.stats();
    proxy.cut_at_random_offset(100);
    ::send(open.fd(), std::string(1000, 'x').data(), 1000, MSG_NOSIGNAL);
    CHECK(receive_until_end(open.fd()).second == ECONNRESET);
    const auto after = proxy.stats();
    CHECK(after.bytes_up + after.bytes_down - before.bytes_up - before.bytes_down <= 100);
}

TEST_CASE("a stall holds the bytes and then delivers every one of them", "[fault_proxy]") {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port(), 7);
    auto c = connect_to(proxy.port());
    REQUIRE(echo_round_trip(c.fd(), "before") == "before");
    const auto up_before = proxy.stats().bytes_up;

    proxy.stall(10min);  // ended below by hand; its length only makes the check safe
    const auto data = random_bytes(200000, 3);
    bool sent = false;
    std::thread writer([&] { sent = try_send_all(c.fd(), data); });
    CHECK(nothing_arrives(c.fd(), 300ms));
    CHECK(proxy.stats().bytes_up == up_before);  // held in the proxy, not forwarded
    proxy.stall(0ms);
    CHECK(receive_up_to(c.fd(), data.size()) == data);
    writer.join();
    CHECK(sent);

    proxy.stall(200ms);  // a short one that ends by itself
    CHECK(echo_round_trip(c.fd(), data) == data);
    const auto s = proxy.stats();
    CHECK(s.stalls == 2);
    CHECK(s.cuts == 0);
}

TEST_CASE("while down the proxy refuses new connections and cuts open ones", "[fault_proxy]") {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port(), 9);
    auto open = connect_to(proxy.port());
    REQUIRE(echo_round_trip(open.fd(), "ping") == "ping");

    proxy.set_down(true);
    CHECK(receive_until_end(open.fd()).second == ECONNRESET);
    // The handshake is the kernel's; on loopback the proxy's reset can come
    // before connect() returns, which then fails with it (1 run in ~500).
    auto [refused, connect_error] = try_connect(proxy.port());
    if (connect_error == 0) {
        ::send(refused.fd(), "ping", 4, MSG_NOSIGNAL);
        const auto [got, how] = receive_until_end(refused.fd());
        CHECK(got.empty());
        CHECK(how != EAGAIN);  // ended, not timed out
    } else {
        CHECK(connect_error == ECONNRESET);
    }
    CHECK(eventually([&] { return proxy.stats().refused == 1; }));

    proxy.set_down(false);
    auto again = connect_to(proxy.port());
    CHECK(echo_round_trip(again.fd(), "back") == "back");
    const auto s = proxy.stats();
    CHECK(s.refused == 1);
    CHECK(s.cuts == 1);
    CHECK(s.connections == 2);  // refused ones are not counted as accepted
}

TEST_CASE("a blackhole holds everything, closes nothing, and cuts it all when lifted",
          "[fault_proxy]") {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port(), 11);
    auto open = connect_to(proxy.port());
    REQUIRE(echo_round_trip(open.fd(), "ping") == "ping");

    proxy.set_blackhole(true);
    send_all(open.fd(), "into the void");
    auto late = connect_to(proxy.port());
    send_all(late.fd(), "anyone?");
    CHECK(nothing_arrives(open.fd(), 300ms));
    CHECK(nothing_arrives(late.fd(), 1ms));
    CHECK(proxy.stats().cuts == 0);

    proxy.set_blackhole(false);
    CHECK(receive_until_end(open.fd()).second == ECONNRESET);
    CHECK(receive_until_end(late.fd()).second == ECONNRESET);
    auto fresh = connect_to(proxy.port());
    CHECK(echo_round_trip(fresh.fd(), "back") == "back");
    CHECK(proxy.stats().cuts == 2);
}

TEST_CASE("random faults happen, driven by the seed, and stop when turned off", "[fault_proxy]") {
    EchoServer echo;
    FaultProxy proxy("127.0.0.1", echo.port(), 5);
    proxy.set_random_faults(20ms);
    REQUIRE(eventually([&] {
        const auto s = proxy.stats();
        if (s.cuts + s.stalls >= 3)
            return true;
        auto c = connect_to(proxy.port());  // something to cut
        ::send(c.fd(), "x", 1, MSG_NOSIGNAL);
        return false;
    }));
    proxy.set_random_faults(0ms);
    const auto quiet = proxy.stats();
    proxy.stall(0ms);  // a random stall may still be running
    auto c = connect_to(proxy.port());
    CHECK(echo_round_trip(c.fd(), "calm") == "calm");
    CHECK(proxy.stats().cuts == quiet.cuts);
}

TEST_CASE("the fault proxy tells a cut inside a COMMIT or a COPY from the protocol bytes",
          "[fault_proxy]") {
    std::uint16_t port = 0;
    const auto listener = listen_on_loopback(port);
    FaultProxy proxy("127.0.0.1", port, 13);
    // Through the proxy: the client's messages reach the stand-in server,
    // which answers as Postgres would, up to where the test cuts.
    auto session = [&](bool with_ssl_request) {
        std::pair<Socket, Socket> ends{connect_to(proxy.port()), Socket()};
        ends.second = Socket(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
        const int client = ends.first.fd(), server = ends.second.fd();
        if (with_ssl_request) {
            send_all(client, kSslRequest);
            receive_exactly(server, kSslRequest.size());
            send_all(server, "N");
            receive_exactly(client, 1);
        }
        send_all(client, kStartup);
        receive_exactly(server, kStartup.size());
        send_all(server, kReady);
        receive_exactly(client, kReady.size());
        return ends;
    };

    SECTION("a COMMIT delivered whose answer is lost is in doubt") {
        auto [client, server] = session(true);
        send_all(client.fd(), query("COMMIT"));
        receive_exactly(server.fd(), query("COMMIT").size());
        proxy.cut_all();
        CHECK(receive_until_end(client.fd()).second == ECONNRESET);
        const auto s = proxy.stats();
        CHECK(s.cuts == 1);
        CHECK(s.cuts_in_commit == 1);
        CHECK(s.cuts_commit_in_doubt == 1);
        CHECK(s.cuts_in_copy == 0);
    }
    SECTION("cut_after_commits cuts once the COMMIT is delivered, before its answer") {
        auto [client, server] = session(false);
        proxy.cut_after_commits(1);
        // Other queries pass untouched.
        send_all(client.fd(), query("SELECT 1"));
        receive_exactly(server.fd(), query("SELECT 1").size());
        send_all(server.fd(), kReady);
        receive_exactly(client.fd(), kReady.size());
        send_all(client.fd(), query("COMMIT"));
        const auto [delivered, server_end] = receive_until_end(server.fd());
        CHECK(delivered == query("COMMIT"));  // Postgres got all of it
        CHECK(server_end == ECONNRESET);
        const auto [answer, client_end] = receive_until_end(client.fd());
        CHECK(answer.empty());  // the client never learns the outcome
        CHECK(client_end == ECONNRESET);
        const auto s = proxy.stats();
        CHECK(s.cuts == 1);
        CHECK(s.cuts_commit_in_doubt == 1);

        // One shot: the next COMMIT passes.
        auto [client2, server2] = session(false);
        send_all(client2.fd(), query("COMMIT"));
        receive_exactly(server2.fd(), query("COMMIT").size());
        send_all(server2.fd(), kReady);
        receive_exactly(client2.fd(), kReady.size());
        CHECK(proxy.stats().cuts == 1);
    }
    SECTION("a COMMIT answered is over; a cut after it is in neither") {
        auto [client, server] = session(false);
        send_all(client.fd(), query("commit"));
        receive_exactly(server.fd(), query("commit").size());
        const auto answer = message('C', std::string("COMMIT\0", 7)) + kReady;
        send_all(server.fd(), answer);
        receive_exactly(client.fd(), answer.size());
        proxy.cut_all();
        CHECK(receive_until_end(client.fd()).second == ECONNRESET);
        const auto s = proxy.stats();
        CHECK(s.cuts == 1);
        CHECK(s.cuts_in_commit == 0);
        CHECK(s.cuts_in_copy == 0);
    }
    SECTION("a cut between CopyInResponse and CopyDone is in a COPY") {
        auto [client, server] = session(true);
        send_all(client.fd(), query("COPY t FROM STDIN"));
        receive_exactly(server.fd(), query("COPY t FROM STDIN").size());
        const auto copy_in = message('G', std::string("\0\0\0", 3));
        send_all(server.fd(), copy_in);
        receive_exactly(client.fd(), copy_in.size());
        const auto row = message('d', "1\tone\n");
        send_all(client.fd(), row);
        receive_exactly(server.fd(), row.size());
        proxy.cut_all();
        CHECK(receive_until_end(client.fd()).second == ECONNRESET);
        const auto s = proxy.stats();
        CHECK(s.cuts_in_copy == 1);
        CHECK(s.cuts_in_commit == 0);
    }
    SECTION("a cut in the middle of one CopyData message is in a COPY") {
        auto [client, server] = session(false);
        // COPY out: the server streams rows; the cut falls inside the first.
        const auto copy_out = message('H', std::string("\0\0\0", 3));
        const auto row = message('d', std::string(3000, 'r'));
        proxy.cut_at_random_offset(0, 0);  // armed now, but nothing flows yet
        CHECK(receive_until_end(client.fd()).second == ECONNRESET);
        CHECK(proxy.stats().cuts_in_copy == 0);  // cut before any COPY

        auto [client2, server2] = session(false);
        send_all(server2.fd(), copy_out);
        receive_exactly(client2.fd(), copy_out.size());
        // Hold the bytes so the cut lands at an offset inside the row.
        proxy.stall(10min);
        send_all(server2.fd(), row);
        proxy.cut_at_random_offset(1000);
        proxy.stall(0ms);
        CHECK(receive_until_end(client2.fd()).second == ECONNRESET);
        const auto s = proxy.stats();
        CHECK(s.cuts == 2);
        CHECK(s.cuts_in_copy == 1);
    }
}

}  // namespace lestash::test
