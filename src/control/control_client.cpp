// Blocking control-socket client (see include/lestash_sync/control/control_client.hpp).
#include "lestash_sync/control/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lestash_sync/control/rpc.hpp"

namespace lestash {

using json = nlohmann::json;

ControlClient::ControlClient(const std::string& socket_path) : path_(socket_path) {
    sockaddr_un addr{};
    if (socket_path.size() >= sizeof addr.sun_path)
        throw std::runtime_error("socket path too long: " + socket_path);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int error = errno;
        ::close(fd_);
        fd_ = -1;
        if (error == ENOENT || error == ECONNREFUSED)
            throw DaemonNotRunning(
                "lestash-syncd is not running (nothing listens on " + socket_path +
                ") — start it with `systemctl --user start lestash-syncd`, or run "
                "`lestash-syncd` in a terminal; --socket picks another socket");
        throw std::runtime_error("cannot connect to lestash-syncd at " + socket_path + ": " +
                                 std::strerror(error) +
                                 (error == EACCES ? " — the daemon runs as another user" : ""));
    }
}

ControlClient::~ControlClient() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool ControlClient::read_message(json& out, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        const auto newline = buffer_.find('\n');
        if (newline != std::string::npos) {
            const std::string line = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            out = json::parse(line);
            return true;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            throw std::runtime_error("lestash-syncd did not answer in time");
        pollfd p{fd_, POLLIN, 0};
        const int ready =
            ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60000)));
        if (ready < 0 && errno != EINTR)
            throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
        if (ready <= 0)
            continue;
        char chunk[65536];
        const auto n = ::read(fd_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw std::runtime_error(std::string("reading from lestash-syncd: ") +
                                     std::strerror(errno));
        if (n == 0)
            return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

json ControlClient::call(const std::string& method, const json& params,
                         const std::function<void(const json&)>& on_notification,
                         std::chrono::milliseconds timeout) {
    const auto id = next_id_++;
    const std::string line =
        rpc::frame({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
    for (std::size_t sent = 0; sent < line.size();) {
        const auto n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw std::runtime_error(std::string("sending to lestash-syncd: ") +
                                     std::strerror(errno));
        sent += static_cast<std::size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    json message;
    while (read_message(message, deadline)) {
        if (!message.contains("id")) {
            if (on_notification)
                on_notification(message);
            continue;
        }
        if (message["id"] != id && !message["id"].is_null())
            continue;
        if (message.contains("error")) {
            const auto& e = message["error"];
            throw RpcError(e.value("code", 0), e.value("message", std::string("unknown error")),
                           e.value("data", json()));
        }
        return message["result"];
    }
    throw std::runtime_error("lestash-syncd closed the connection (is it stopping?)");
}

void ControlClient::follow(const std::function<bool(const json&)>& on_notification) {
    json message;
    const auto forever = std::chrono::steady_clock::time_point::max() - std::chrono::hours(24);
    while (read_message(message, forever))
        if (!message.contains("id") && !on_notification(message))
            return;
}

}  // namespace lestash
