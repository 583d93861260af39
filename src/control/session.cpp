// One client of the control socket (see session.hpp).
#include "session.hpp"

#include <spdlog/spdlog.h>

#include "lestash_sync/control/rpc.hpp"
#include "server.hpp"

namespace lestash::control {

using json = nlohmann::json;

Session::Session(std::shared_ptr<ControlServer::Impl> server, stream::socket socket,
                 std::uint64_t number)
    : server(std::move(server)),
      socket(std::move(socket)),
      read_timer(this->socket.get_executor()),
      number(number) {}

void Session::read() {
    if (!open)
        return;
    if (!subscribed) {
        read_timer.expires_after(server->options.read_timeout);
        read_timer.async_wait([weak = weak_from_this()](std::error_code ec) {
            auto self = weak.lock();
            if (ec || !self || !self->open)
                return;
            self->cut_off(
                rpc::error_response(
                    nullptr, rpc::invalid_request,
                    "no complete request within " +
                        std::to_string(self->server->options.read_timeout.count() / 1000) +
                        " s: closing the connection"),
                "read timeout");
        });
    }
    asio::async_read_until(
        socket, asio::dynamic_buffer(inbuf, rpc::kMaxRequestBytes + 1), '\n',
        [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_read(ec, n); });
}

void Session::on_read(std::error_code ec, std::size_t n) {
    read_timer.cancel();
    if (!open)
        return;
    if (ec == asio::error::not_found) {  // the buffer filled without a newline
        cut_off(rpc::error_response(nullptr, rpc::too_large,
                                    "request longer than " + std::to_string(rpc::kMaxRequestBytes) +
                                        " bytes: closing the connection"),
                "request too large");
        return;
    }
    if (ec) {
        close();
        return;
    }
    std::string line = inbuf.substr(0, n - 1);
    inbuf.erase(0, n);
    if (!line.empty() && line.back() == '\r')
        line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) {
        auto parsed = rpc::parse_request(line);
        if (auto* rejection = std::get_if<rpc::Rejection>(&parsed))
            send(rejection->response);
        else
            server->dispatch(shared_from_this(), std::move(std::get<rpc::Request>(parsed)));
    }
    read();
}

void Session::send(const json& message) {
    if (!open)
        return;
    std::string line = rpc::frame(message);
    if (queued + line.size() > server->options.max_queued_bytes) {
        spdlog::warn("control client {} reads too slowly ({} bytes unread): disconnected", number,
                     queued);
        close();
        return;
    }
    queued += line.size();
    out.push_back(std::move(line));
    if (!writing)
        write_next();
}

void Session::write_next() {
    writing = true;
    asio::async_write(socket, asio::buffer(out.front()),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                          self->queued -= self->out.front().size();
                          self->out.pop_front();
                          if (ec)
                              return self->close();
                          if (!self->out.empty())
                              return self->write_next();
                          self->writing = false;
                          if (self->closing)
                              self->close();
                      });
}

void Session::cut_off(const json& error, const char* why) {
    spdlog::info("control client {} cut off: {}", number, why);
    send(error);
    closing = true;
    if (!writing)
        close();
}

void Session::close() {
    if (!open)
        return;
    open = false;
    std::error_code ignored;
    read_timer.cancel();
    socket.shutdown(stream::socket::shutdown_both, ignored);
    socket.close(ignored);
    server->sessions.erase(shared_from_this());
}

}  // namespace lestash::control
