// LISTEN lestash_changes on a connection of its own: the socket is handed to
// whoever waits (poll), and pending notifications are drained without
// blocking. One owner for the PGconn, closed on destruction.
#pragma once

#include <libpq-fe.h>

#include <string>

namespace lestash {

class ChangeListener {
  public:
    // Connects and issues LISTEN; raises UpstreamError (transient when the
    // server is unreachable) naming the target, never the password.
    explicit ChangeListener(const std::string& conninfo);
    ~ChangeListener();
    ChangeListener(const ChangeListener&) = delete;
    ChangeListener& operator=(const ChangeListener&) = delete;

    int socket() const;
    // Reads what the server sent; returns how many notifications arrived
    // for changes written by anyone but `own_replica_id` (whose pushes the
    // replica already has). Raises a transient UpstreamError when the
    // connection is gone.
    int drain(const std::string& own_replica_id);

  private:
    PGconn* conn_ = nullptr;
    std::string target_;
};

}  // namespace lestash
