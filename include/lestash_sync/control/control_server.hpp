// The daemon's control socket: newline-delimited JSON-RPC 2.0 on a Unix
// stream socket (docs/protocol.md), served on the daemon's asio loop. Only
// the daemon's own user gets in (directory 0700, socket 0600, SO_PEERCRED
// checked); requests are capped at 1 MiB and must arrive within the read
// timeout; slow readers are cut off rather than buffered without bound.
// Reads (search, items, history) run on a query thread with a read-only
// connection; work needing Postgres (verify, conflicts) goes to the sync
// worker. Nothing a client does can block syncing.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "lestash_sync/daemon/status.hpp"
#include "lestash_sync/daemon/sync_worker.hpp"

namespace lestash {

struct ControlOptions {
    std::string socket_path;
    std::string database_path;                      // for the read-only query connection
    std::chrono::milliseconds read_timeout{30000};  // for a request to arrive in full
    std::size_t max_clients = 128;
    std::size_t max_queued_bytes = std::size_t{8} * 1024 * 1024;  // per client, unsent
};

class ControlServer {
  public:
    // Creates the socket (and its private directory) and starts accepting
    // on `io`. Raises ConfigError when the path cannot be used safely, or
    // another daemon listens there.
    ControlServer(asio::io_context& io, ControlOptions options, StatusBoard& status,
                  SyncWorker& worker);
    // Closes every client and removes the socket.
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Call on the loop's thread after every worker cycle: sends events to
    // subscribers and answers `sync.now` waiters that are caught up.
    void status_changed();
    // Tells waiting clients the daemon is going away.
    void shutting_down();
    // A reloaded [control] section. The read timeout applies from each
    // client's next request. A new socket path is listened on first, then
    // the old socket closed and removed; connected clients stay. Raises
    // ConfigError, as at start, when the new path cannot be used, and then
    // keeps listening where it was.
    void reconfigure(const std::string& socket_path, std::chrono::milliseconds read_timeout);

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace lestash
