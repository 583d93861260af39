// A blocking client for the daemon's control socket (docs/protocol.md),
// used by the lestash-sync CLI and the tests.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace lestash {

// No daemon listens on the socket (or the socket does not exist).
struct DaemonNotRunning : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The daemon answered with a JSON-RPC error.
struct RpcError : std::runtime_error {
    RpcError(int code, const std::string& message, nlohmann::json data)
        : std::runtime_error(message), code(code), data(std::move(data)) {}
    int code;
    nlohmann::json data;
};

class ControlClient {
  public:
    // Connects; raises DaemonNotRunning with how to start it, or
    // std::runtime_error for other failures (permission denied...).
    explicit ControlClient(const std::string& socket_path);
    ~ControlClient();
    ControlClient(const ControlClient&) = delete;
    ControlClient& operator=(const ControlClient&) = delete;

    // Sends a request and waits for its response; notifications arriving
    // first go to `on_notification`. Raises RpcError, or runtime_error when
    // the connection fails or `timeout` passes.
    nlohmann::json call(const std::string& method,
                        const nlohmann::json& params = nlohmann::json::object(),
                        const std::function<void(const nlohmann::json&)>& on_notification = {},
                        std::chrono::milliseconds timeout = std::chrono::minutes(10));
    // Delivers notifications until `on_notification` returns false or the
    // daemon closes the connection (returns normally then).
    void follow(const std::function<bool(const nlohmann::json&)>& on_notification);

  private:
    // One message; false on end of stream. Throws on timeout.
    bool read_message(nlohmann::json& out, std::chrono::steady_clock::time_point deadline);

    int fd_ = -1;
    std::string path_;
    std::string buffer_;
    std::int64_t next_id_ = 1;
};

}  // namespace lestash
