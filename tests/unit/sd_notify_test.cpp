// The sd_notify sender against a datagram socket the test owns, standing in
// for systemd: the exact bytes of each message, path and abstract sockets,
// and the watchdog settings read from the environment.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <stdexcept>

#include "lestash_sync/daemon/sd_notify.hpp"
#include "scoped_env.hpp"
#include "temp_dir.hpp"

using lestash::SystemdNotifier;
using lestash::test::ScopedEnv;
using namespace std::chrono;

namespace {

// What systemd does: a bound SOCK_DGRAM socket that receives the messages.
class NotifyReceiver {
  public:
    // `address` as NOTIFY_SOCKET would give it: a path, or "@name".
    explicit NotifyReceiver(const std::string& address) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0)
            throw std::runtime_error("socket failed");
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, address.data(), address.size());
        if (address[0] == '@')
            addr.sun_path[0] = '\0';
        const auto length =
            static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), length) != 0)
            throw std::runtime_error("bind " + address + ": " + std::strerror(errno));
    }
    ~NotifyReceiver() { ::close(fd_); }
    NotifyReceiver(const NotifyReceiver&) = delete;
    NotifyReceiver& operator=(const NotifyReceiver&) = delete;

    // The next datagram, or "(nothing)" when none arrives in a generous
    // while (a failure, not a timing check: the message was sent already).
    std::string receive() {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 5000) != 1)
            return "(nothing)";
        char buffer[4096];
        const auto n = ::recv(fd_, buffer, sizeof buffer, 0);
        return n < 0 ? "(error)" : std::string(buffer, static_cast<std::size_t>(n));
    }
    // True when a datagram is waiting, without blocking.
    bool has_message() {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) == 1;
    }

  private:
    int fd_ = -1;
};

std::string unique_abstract_name() {
    std::random_device random;
    return "@lestash-test-notify-" + std::to_string(::getpid()) + "-" + std::to_string(random());
}

void sends_each_message(const std::string& address) {
    NotifyReceiver systemd(address);
    ScopedEnv socket("NOTIFY_SOCKET", address);
    SystemdNotifier notifier;
    REQUIRE(notifier.enabled());

    notifier.ready();
    CHECK(systemd.receive() == "READY=1");
    notifier.status("syncing: 3 local changes waiting");
    CHECK(systemd.receive() == "STATUS=syncing: 3 local changes waiting");
    notifier.watchdog();
    CHECK(systemd.receive() == "WATCHDOG=1");
    notifier.stopping();
    CHECK(systemd.receive() == "STOPPING=1");
    CHECK_FALSE(systemd.has_message());
}

}  // namespace

TEST_CASE("without NOTIFY_SOCKET the notifier is off and sends nothing", "[sd_notify]") {
    lestash::test::TempDir dir;
    NotifyReceiver systemd(dir.file("notify"));
    ScopedEnv socket("NOTIFY_SOCKET", std::nullopt);
    SystemdNotifier notifier;
    CHECK_FALSE(notifier.enabled());
    notifier.ready();
    notifier.status("x");
    CHECK_FALSE(systemd.has_message());
}

TEST_CASE("READY, STATUS, WATCHDOG and STOPPING arrive as exact datagrams on a socket path",
          "[sd_notify]") {
    lestash::test::TempDir dir;
    sends_each_message(dir.file("notify"));
}

TEST_CASE("an @name NOTIFY_SOCKET is reached in the abstract namespace", "[sd_notify]") {
    sends_each_message(unique_abstract_name());
}

TEST_CASE("a status with line breaks stays one STATUS assignment", "[sd_notify]") {
    const auto address = unique_abstract_name();
    NotifyReceiver systemd(address);
    ScopedEnv socket("NOTIFY_SOCKET", address);
    SystemdNotifier notifier;
    notifier.status("offline\nREADY=1");
    CHECK(systemd.receive() == "STATUS=offline READY=1");
}

TEST_CASE("RELOADING=1 carries the monotonic time the reload started", "[sd_notify]") {
    const auto address = unique_abstract_name();
    NotifyReceiver systemd(address);
    ScopedEnv socket("NOTIFY_SOCKET", address);
    SystemdNotifier notifier;
    timespec before{};
    ::clock_gettime(CLOCK_MONOTONIC, &before);
    notifier.reloading();
    const std::string message = systemd.receive();
    const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
    REQUIRE(message.rfind(prefix, 0) == 0);
    const long long usec = std::stoll(message.substr(prefix.size()));
    CHECK(usec >= static_cast<long long>(before.tv_sec) * 1000000 + before.tv_nsec / 1000);
}

TEST_CASE("a NOTIFY_SOCKET that is neither a path nor @name turns the notifier off",
          "[sd_notify]") {
    for (const char* bad : {"relative/notify", "@", "vsock:2:1234"}) {
        ScopedEnv socket("NOTIFY_SOCKET", std::string(bad));
        CHECK_FALSE(SystemdNotifier().enabled());
    }
    ScopedEnv socket("NOTIFY_SOCKET", "/" + std::string(200, 'x'));
    CHECK_FALSE(SystemdNotifier().enabled());
}

TEST_CASE("the watchdog interval comes from WATCHDOG_USEC when WATCHDOG_PID is this process",
          "[sd_notify]") {
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    {
        ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
        CHECK_FALSE(SystemdNotifier().watchdog_interval());
    }
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    CHECK(SystemdNotifier().watchdog_interval() == seconds(30));
    {
        ScopedEnv mine("WATCHDOG_PID", std::to_string(::getpid()));
        CHECK(SystemdNotifier().watchdog_interval() == seconds(30));
    }
    {
        ScopedEnv parent("WATCHDOG_PID", std::to_string(::getppid()));
        CHECK_FALSE(SystemdNotifier().watchdog_interval());
    }
    for (const char* bad : {"0", "-5", "30s", ""}) {
        ScopedEnv garbage("WATCHDOG_USEC", std::string(bad));
        CHECK_FALSE(SystemdNotifier().watchdog_interval());
    }
}
