// The control protocol's framing and envelopes: newline-delimited JSON-RPC
// 2.0 (see docs/protocol.md). Pure functions, no I/O: the socket server, the
// CLI and the fuzz target share them.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

namespace lestash::rpc {

using json = nlohmann::json;

// Bumped when a method changes incompatibly; additions keep the number.
inline constexpr int kProtocolVersion = 1;
// The longest request line accepted (the newline excluded).
inline constexpr std::size_t kMaxRequestBytes = 1024 * 1024;

enum ErrorCode : int {
    parse_error = -32700,        // not JSON, or not UTF-8
    invalid_request = -32600,    // JSON, but not a JSON-RPC 2.0 request
    method_not_found = -32601,   //
    invalid_params = -32602,     // a param missing, of the wrong type or out of range
    internal_error = -32603,     // a bug or an unexpected failure: see the daemon's log
    unavailable = -32000,        // Postgres unreachable, or the daemon stopping
    bad_query = -32001,          // the FTS5 search query is not valid
    not_found = -32002,          // no such item / conflict
    timed_out = -32003,          // sync.now --wait ran out of time
    paused = -32004,             // sync is paused
    too_large = -32005,          // the request line is longer than kMaxRequestBytes
    permission_denied = -32006,  // the client runs as another user
};

struct Request {
    json id;  // number or string; null for a notification
    bool notification = false;
    std::string method;
    json params = json::object();
};

// A request that cannot be answered normally: the error response to send.
struct Rejection {
    json response;
};

// Parses one line. A malformed line gives the error response to send
// (id null when the id could not be read, as JSON-RPC requires).
std::variant<Request, Rejection> parse_request(std::string_view line);

json error_response(const json& id, int code, const std::string& message,
                    const json& data = nullptr);
json result_response(const json& id, json result);
json notification(const std::string& method, json params);
// One line on the wire: compact JSON, invalid UTF-8 replaced, then '\n'.
std::string frame(const json& message);

// Thrown by method handlers; turned into the error response.
struct Failure : std::runtime_error {
    Failure(int code, const std::string& message, json data = nullptr)
        : std::runtime_error(message), code(code), data(std::move(data)) {}
    int code;
    json data;
};

// Typed access to params, raising Failure(invalid_params) that names the
// param and the type expected.
class Params {
  public:
    explicit Params(const json& params) : params_(params) {}
    std::optional<std::string> text(const std::string& name) const;
    std::string required_text(const std::string& name) const;
    std::optional<std::int64_t> integer(const std::string& name, std::int64_t min,
                                        std::int64_t max) const;
    std::optional<bool> boolean(const std::string& name) const;
    // Raises Failure(invalid_params) naming the first param not in `known`.
    void only(std::initializer_list<const char*> known) const;

  private:
    const json* get(const std::string& name) const;
    const json& params_;
};

}  // namespace lestash::rpc
