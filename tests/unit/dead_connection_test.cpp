// A dead path to Postgres is noticed, never waited on for ever: the network
// timeouts added to the daemon's conninfo (unless the user set them), and the
// guard that drops a connection whose request gets no answer, on real
// loopback sockets.
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <thread>

#include "lestash_sync/daemon/conninfo.hpp"
#include "lestash_sync/daemon/response_guard.hpp"
#include "scoped_env.hpp"
#include "temp_dir.hpp"

namespace lestash::test {
namespace {

using namespace std::chrono_literals;

// What libpq reads from a conninfo, keyword by keyword (set ones only).
std::map<std::string, std::string> parsed(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    INFO(conninfo << ": " << (error ? error : ""));
    REQUIRE(options);
    std::map<std::string, std::string> out;
    for (auto* o = options; o->keyword; ++o)
        if (o->val)
            out[o->keyword] = o->val;
    PQconninfoFree(options);
    return out;
}

const std::map<std::string, std::string> kDefaults = {
    {"connect_timeout", "10"}, {"keepalives_idle", "30"},     {"keepalives_interval", "10"},
    {"keepalives_count", "3"}, {"tcp_user_timeout", "60000"},
};

// A connected pair of TCP sockets on loopback: [0] the client, [1] the server.
struct TcpPair {
    int fd[2] = {-1, -1};
    TcpPair() {
        const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof addr;
        REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listener, 1) == 0);
        REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
        fd[0] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(fd[0], reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        fd[1] = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        ::close(listener);
        REQUIRE(fd[1] >= 0);
        const timeval tv{60, 0};  // liveness only
        ::setsockopt(fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~TcpPair() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
    void send(int side, const std::string& text) const {
        REQUIRE(::send(fd[side], text.data(), text.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(text.size()));
    }
    // As libpq does: poll, then read.
    std::string receive(int side) const {
        pollfd p{fd[side], POLLIN, 0};
        ::poll(&p, 1, 60000);  // liveness only
        char buf[256];
        const auto n = ::recv(fd[side], buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }
};

}  // namespace

TEST_CASE("the daemon's conninfo gets network timeouts where the user set none",
          "[conninfo][network]") {
    ScopedEnv no_service("PGSERVICE", std::nullopt), no_timeout("PGCONNECT_TIMEOUT", std::nullopt);

    auto pairs = parsed(with_network_defaults("host=db.example.org dbname=lestash"));
    for (const auto& [key, value] : kDefaults) CHECK(pairs[key] == value);
    CHECK(pairs["host"] == "db.example.org");

    // The user's own values stay, once.
    const auto own = with_network_defaults("connect_timeout=3 host=h tcp_user_timeout=5000");
    CHECK(own.find("connect_timeout=10") == std::string::npos);
    CHECK(own.find("tcp_user_timeout=60000") == std::string::npos);
    pairs = parsed(own);
    CHECK(pairs["connect_timeout"] == "3");
    CHECK(pairs["tcp_user_timeout"] == "5000");
    CHECK(pairs["keepalives_idle"] == "30");

    // URIs stay URIs, with or without a query already.
    for (const std::string uri : {"postgresql://me@db.example.org/lestash",
                                  "postgres://db.example.org:5433/lestash?sslmode=require"}) {
        const auto out = with_network_defaults(uri);
        CHECK(out.rfind(uri, 0) == 0);
        pairs = parsed(out);
        for (const auto& [key, value] : kDefaults) CHECK(pairs[key] == value);
        CHECK(pairs["host"] == "db.example.org");
    }
    CHECK(parsed(with_network_defaults(
              "postgres://db.example.org/lestash?sslmode=require"))["sslmode"] == "require");

    // libpq's environment variable counts as set.
    {
        ScopedEnv env("PGCONNECT_TIMEOUT", "4");
        CHECK(parsed(with_network_defaults("host=h")).count("connect_timeout") == 0);
    }
    // So does a key in the pg_service.conf service, named in the conninfo or by PGSERVICE.
    TempDir dir;
    std::ofstream(dir.file("pg_service.conf"))
        << "# services\n[other]\nconnect_timeout=1\n\n[mine]\nhost=h\n keepalives_idle = 5\n";
    ScopedEnv file("PGSERVICEFILE", dir.file("pg_service.conf"));
    pairs = parsed(with_network_defaults("service=mine"));
    CHECK(pairs.count("keepalives_idle") == 0);
    CHECK(pairs["connect_timeout"] == "10");  // set only in another service
    {
        ScopedEnv env("PGSERVICE", "mine");
        CHECK(parsed(with_network_defaults("dbname=x")).count("keepalives_idle") == 0);
    }

    CHECK(with_network_defaults("host='unterminated") == "host='unterminated");
    CHECK(parsed(with_network_defaults("")).size() == kDefaults.size());
}

TEST_CASE("a request that gets no answer has its connection dropped by the guard",
          "[response_guard][network]") {
    TcpPair pair;
    ResponseGuard guard(200ms);
    guard.watch({pair.fd[0]}, "test server");
    guard.busy(true);
    pair.send(0, "SELECT 1");
    CHECK(pair.receive(1) == "SELECT 1");  // it arrived; no answer comes
    // The client's blocked read ends: libpq would report a lost connection.
    CHECK(pair.receive(0).empty());
    CHECK(guard.dropped() == 1);
}

TEST_CASE("the guard leaves answered and forgotten connections alone, idle ones until busy again",
          "[response_guard][network]") {
    TcpPair pair;
    ResponseGuard guard(100ms);
    guard.watch({pair.fd[0]}, "test server");

    SECTION("answered") {
        guard.busy(true);
        pair.send(0, "SELECT 1");
        CHECK(pair.receive(1) == "SELECT 1");
        pair.send(1, "1");
        CHECK(pair.receive(0) == "1");
        // Local work far longer than the timeout: not waiting on the socket.
        std::this_thread::sleep_for(600ms);
        CHECK(guard.dropped() == 0);
        pair.send(1, "still here");
        CHECK(pair.receive(0) == "still here");
    }
    SECTION("unanswered while the worker is idle, until it is busy again") {
        pair.send(0, "SELECT 1");
        CHECK(pair.receive(1) == "SELECT 1");
        std::this_thread::sleep_for(600ms);
        CHECK(guard.dropped() == 0);
        guard.busy(true);
        CHECK(pair.receive(0).empty());
        CHECK(guard.dropped() == 1);
    }
    SECTION("forgotten") {
        guard.busy(true);
        guard.forget();
        pair.send(0, "SELECT 1");
        CHECK(pair.receive(1) == "SELECT 1");
        std::this_thread::sleep_for(600ms);
        CHECK(guard.dropped() == 0);
        pair.send(1, "still here");
        CHECK(pair.receive(0) == "still here");
    }
}

// libpq closes its socket itself when it finds the connection lost, on the
// worker's thread, and the number may name another file at once. A guard
// going by the number raced that close (ThreadSanitizer reported libpq's
// close() in the change-log read against the guard's fstat) and could cut
// whatever connection took the number. Here the number is taken over by
// another connection (dup2, as a reuse would): the guard still cuts the
// connection it was given, through its own descriptor, and never the other.
TEST_CASE("the guard cuts the socket it was given, not whatever later takes its number",
          "[response_guard][network]") {
    TcpPair given, other;
    ResponseGuard guard(100ms);
    guard.watch({given.fd[0]}, "test server");
    guard.busy(true);
    given.send(0, "SELECT 1");
    CHECK(given.receive(1) == "SELECT 1");
    other.send(0, "SELECT 2");  // as unanswered as the given one
    CHECK(other.receive(1) == "SELECT 2");

    REQUIRE(::dup2(other.fd[0], given.fd[0]) == given.fd[0]);
    // Blocked in poll (as libpq is) until the given connection is cut.
    CHECK(given.receive(1).empty());
    CHECK(guard.dropped() == 1);
    other.send(1, "1");
    CHECK(other.receive(0) == "1");
    guard.forget();
}

}  // namespace lestash::test
