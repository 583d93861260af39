// The sd_notify protocol (see include/lestash_sync/daemon/sd_notify.hpp), as
// described in sd_notify(3): one datagram per message, newline-separated
// VARIABLE=value assignments, sent to the socket systemd created for us.
#include "lestash_sync/daemon/sd_notify.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>

namespace lestash {
namespace {

// A whole, positive decimal number, or nothing.
template <typename Number>
std::optional<Number> positive_number(const char* text) {
    if (!text)
        return std::nullopt;
    const std::string_view s(text);
    Number value{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || value <= 0)
        return std::nullopt;
    return value;
}

// WatchdogSec= is meant for the main process only: systemd sets
// WATCHDOG_PID, and a child that inherited the environment must not ping.
std::optional<std::chrono::microseconds> watchdog_from_environment() {
    const auto usec = positive_number<long long>(std::getenv("WATCHDOG_USEC"));
    if (!usec)
        return std::nullopt;
    if (const char* pid_text = std::getenv("WATCHDOG_PID")) {
        const auto pid = positive_number<pid_t>(pid_text);
        if (!pid || *pid != ::getpid())
            return std::nullopt;
    }
    return std::chrono::microseconds(*usec);
}

}  // namespace

SystemdNotifier::SystemdNotifier() : watchdog_(watchdog_from_environment()) {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    if (!socket || !*socket)
        return;
    address_text_ = socket;
    const bool abstract = address_text_[0] == '@';
    // A path needs room for its terminating NUL; an abstract name does not.
    const std::size_t room = sizeof(address_.sun_path) - (abstract ? 0 : 1);
    if ((!abstract && address_text_[0] != '/') || address_text_.size() > room ||
        (abstract && address_text_.size() < 2)) {
        spdlog::warn(
            "NOTIFY_SOCKET=\"{}\" is not a socket path or @name of at most {} bytes: "
            "not notifying systemd (the unit's start may time out)",
            address_text_, room);
        return;
    }
    address_.sun_family = AF_UNIX;
    std::memcpy(address_.sun_path, address_text_.data(), address_text_.size());
    if (abstract)
        address_.sun_path[0] = '\0';
    address_length_ =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_text_.size());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        spdlog::warn("cannot create a socket to notify systemd: {}", std::strerror(errno));
}

SystemdNotifier::~SystemdNotifier() {
    if (fd_ >= 0)
        ::close(fd_);
}

void SystemdNotifier::status(const std::string& text) {
    std::string line = text;
    std::replace(line.begin(), line.end(), '\n', ' ');
    send("STATUS=" + line);
}

void SystemdNotifier::reloading() {
    // systemd 253+ (Type=notify-reload) needs the time the reload started.
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const long long usec = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void SystemdNotifier::send(const std::string& message) {
    if (fd_ < 0)
        return;
    const auto sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&address_), address_length_);
    if (sent >= 0 || warned_)
        return;
    // Once is enough: systemd going away is not worth a line per watchdog ping.
    warned_ = true;
    spdlog::warn("cannot notify systemd at {}: {}", address_text_, std::strerror(errno));
}

}  // namespace lestash
