// The control socket itself: its private directory, a stale socket file
// removed, listening, and accepting clients of this daemon's own uid only
// (see include/lestash_sync/control/control_server.hpp and
// docs/protocol.md). The rest of the server is in server.hpp's parts.
#include "lestash_sync/control/control_server.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/control/rpc.hpp"
#include "server.hpp"

namespace lestash {

namespace {

namespace fs = std::filesystem;
using control::Session;
using control::stream;

// The socket's directory must be ours and private: created 0700, or an
// existing one we own tightened to 0700. A directory someone else owns
// (say /tmp/lestash-1000 made by another user first) is refused.
void prepare_socket_directory(const std::string& socket_path) {
    const fs::path dir = fs::path(socket_path).parent_path();
    if (dir.empty())
        return;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
        std::error_code ec;
        fs::create_directories(dir.parent_path(), ec);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw ConfigError("cannot create the control socket's directory " + dir.string() +
                              ": " + std::strerror(errno) +
                              " — set [control] socket or --socket to a path you can write");
        if (::lstat(dir.c_str(), &st) != 0)
            throw ConfigError("cannot use " + dir.string() + ": " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        throw ConfigError("the control socket's directory " + dir.string() + " is not a directory");
    if (st.st_uid != ::geteuid())
        throw ConfigError("the control socket's directory " + dir.string() + " belongs to uid " +
                          std::to_string(st.st_uid) +
                          ", not to you — choose another path with --socket or [control] socket");
    if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0)
        throw ConfigError("cannot make " + dir.string() +
                          " private (chmod 0700): " + std::strerror(errno));
}

// A socket file left by a daemon that died is removed; a live one is not.
void remove_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return;
    if (!S_ISSOCK(st.st_mode))
        throw ConfigError(path +
                          " exists and is not a socket — remove it or choose another --socket");
    asio::io_context probe_io;
    stream::socket probe(probe_io);
    std::error_code ec;
    probe.connect(stream::endpoint(path), ec);
    if (!ec)
        throw ConfigError("another lestash-syncd is already listening on " + path +
                          " — stop it first, or give this one another --socket");
    ::unlink(path.c_str());
}

// Listening on `path`, the socket created 0600 in a private directory.
void listen_on(stream::acceptor& acceptor, const std::string& path) {
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
        throw ConfigError("control socket path too long for a Unix socket: " + path);
    prepare_socket_directory(path);
    remove_stale_socket(path);
    std::error_code ec;
    acceptor.open(stream(), ec);
    if (!ec) {
        // Created 0600 from the start: no moment where others could connect.
        const mode_t old_mask = ::umask(0177);
        acceptor.bind(stream::endpoint(path), ec);
        ::umask(old_mask);
    }
    if (!ec)
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw ConfigError("cannot create the control socket " + path + ": " + ec.message() +
                          " — set [control] socket or --socket to a path you can write");
}

}  // namespace

void ControlServer::Impl::accept() {
    acceptor.async_accept([self = shared_from_this(), socket_number = listening](
                              std::error_code ec, stream::socket socket) {
        if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
            return;
        if (!ec) {
            const auto number = self->next_session++;
            ucred peer{};
            socklen_t len = sizeof peer;
            const bool known =
                ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0;
            auto session = std::make_shared<Session>(self, std::move(socket), number);
            self->sessions.insert(session);
            if (!known || peer.uid != ::geteuid()) {
                spdlog::warn("control client {} refused: it runs as uid {}, this daemon as uid {}",
                             number, known ? std::to_string(peer.uid) : "unknown", ::geteuid());
                session->cut_off(
                    rpc::error_response(nullptr, rpc::permission_denied,
                                        "permission denied: this daemon serves only uid " +
                                            std::to_string(::geteuid())),
                    "another user");
            } else if (self->sessions.size() > self->options.max_clients) {
                session->cut_off(rpc::error_response(nullptr, rpc::unavailable,
                                                     "too many clients (" +
                                                         std::to_string(self->options.max_clients) +
                                                         "): try again shortly"),
                                 "too many clients");
            } else {
                session->start();
            }
        } else {
            spdlog::warn("control socket: accept failed: {}", ec.message());
        }
        if (socket_number == self->listening)
            self->accept();
    });
}

ControlServer::ControlServer(asio::io_context& io, ControlOptions options, StatusBoard& status,
                             SyncWorker& worker)
    : impl_(std::make_shared<Impl>(io, std::move(options), status, worker)) {
    listen_on(impl_->acceptor, impl_->options.socket_path);
    impl_->accept();
    spdlog::info("control socket at {}", impl_->options.socket_path);
}

void ControlServer::reconfigure(const std::string& socket_path,
                                std::chrono::milliseconds read_timeout) {
    if (socket_path != impl_->options.socket_path) {
        stream::acceptor fresh(impl_->io);
        listen_on(fresh, socket_path);
        std::error_code ignored;
        impl_->acceptor.close(ignored);
        ::unlink(impl_->options.socket_path.c_str());
        spdlog::info("control socket moved from {} to {}", impl_->options.socket_path, socket_path);
        impl_->acceptor = std::move(fresh);
        impl_->options.socket_path = socket_path;
        ++impl_->listening;
        impl_->accept();
    }
    impl_->options.read_timeout = read_timeout;
}

ControlServer::~ControlServer() {
    std::error_code ignored;
    impl_->acceptor.close(ignored);
    for (const auto& s :
         std::vector<std::shared_ptr<Session>>(impl_->sessions.begin(), impl_->sessions.end()))
        s->close();
    for (auto& w : impl_->waiters) w.timer->cancel();
    impl_->waiters.clear();
    ::unlink(impl_->options.socket_path.c_str());
}

void ControlServer::status_changed() {
    impl_->status_changed();
}

void ControlServer::shutting_down() {
    impl_->stopping = true;
    for (auto& w : impl_->waiters) {
        w.timer->cancel();
        if (auto s = w.session.lock())
            s->send(rpc::error_response(w.id, rpc::unavailable, "the daemon is stopping"));
    }
    impl_->waiters.clear();
}

}  // namespace lestash
