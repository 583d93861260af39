// One client of the control socket: newline-delimited framing, the read
// timeout for a request to arrive in full, the 1 MiB cap, and a bounded
// queue of what is still to be written (a client that reads too slowly is
// disconnected rather than buffered without bound).
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "lestash_sync/control/control_server.hpp"

namespace lestash::control {

using stream = asio::local::stream_protocol;

struct Session : std::enable_shared_from_this<Session> {
    Session(std::shared_ptr<ControlServer::Impl> server, stream::socket socket,
            std::uint64_t number);

    void start() { read(); }
    // Queues one message; disconnects a client with too much unread.
    void send(const nlohmann::json& message);
    // Sends a last error, then closes once it is written.
    void cut_off(const nlohmann::json& error, const char* why);
    void close();

    std::shared_ptr<ControlServer::Impl> server;
    stream::socket socket;
    asio::steady_timer read_timer;
    std::uint64_t number;
    std::string inbuf;
    std::deque<std::string> out;
    std::size_t queued = 0;
    bool writing = false, open = true, closing = false, subscribed = false;

  private:
    void read();
    void on_read(std::error_code ec, std::size_t n);
    void write_next();
};

}  // namespace lestash::control
