// A test-only TCP proxy on loopback that sits between the daemons and
// Postgres and breaks the connection on purpose: cuts at a random byte offset
// (so a cut can land in the middle of a COPY or a COMMIT), stalls (bytes held,
// then delivered), a blackhole (bytes held until the connection dies, as when
// a laptop loses its network) and refusals (Postgres unreachable). One thread
// runs a poll loop over every connection; all methods are thread-safe. The
// destructor closes every socket and joins the thread, even mid-fault.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace lestash::test {

class FaultProxy {
  public:
    struct Stats {
        std::uint64_t connections = 0;  // accepted from clients
        std::uint64_t bytes_up = 0;     // client -> server, forwarded
        std::uint64_t bytes_down = 0;   // server -> client, forwarded
        std::uint64_t cuts = 0;         // connections cut by a fault
        std::uint64_t stalls = 0;       // stall periods begun
        std::uint64_t refused = 0;      // connections refused while down
        // Of `cuts`, read from the Postgres protocol bytes (plain text only):
        std::uint64_t cuts_in_copy = 0;          // during a COPY (in or out)
        std::uint64_t cuts_in_commit = 0;        // between a COMMIT's first byte and its answer
        std::uint64_t cuts_commit_in_doubt = 0;  // COMMIT delivered, its answer not
    };

    // Listens on 127.0.0.1 at a free port and forwards each connection to
    // upstream_host:upstream_port. `seed` drives every random choice.
    FaultProxy(std::string upstream_host, std::uint16_t upstream_port, std::uint64_t seed);
    ~FaultProxy();
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    std::uint16_t port() const;
    // "host=127.0.0.1 port=N": replaces host/port in a conninfo.
    std::string host_port_conninfo() const;

    // Closes every open connection now (RST, both directions).
    void cut_all();
    // Every open connection, and the next `connections` new ones, is cut
    // after a random number of further bytes in [0, max_bytes] in either
    // direction; one shot per connection.
    void cut_at_random_offset(std::uint64_t max_bytes, int connections = 1);
    // The next `commits` COMMITs (simple query, any connection) are cut right
    // after Postgres has received them, before their answer reaches the
    // client: the commit happened, the client cannot know. Random cuts land
    // there rarely on loopback, where a COMMIT takes well under a millisecond.
    void cut_after_commits(int commits);
    // The next `responses` times the server starts answering on a
    // connection (its first bytes after the client's last), the connection
    // is cut before those bytes reach the client: the request was served,
    // the client cannot know. For HTTP between a phone and its endpoint.
    void cut_responses(int responses);
    // Forwarding stops for `duration` (bytes held, not lost), then resumes.
    // A new stall replaces the one in effect: stall(0ms) ends it now.
    void stall(std::chrono::milliseconds duration);
    // While on, nothing is forwarded and nothing is closed: the peers wait
    // until their own timeouts fire. Turning it off cuts the held connections.
    void set_blackhole(bool on);
    // While down, new connections are accepted and closed at once and open
    // ones are cut: Postgres looks unreachable.
    void set_down(bool down);
    // Random faults: on average once per `mean_period`, one of cut_all,
    // cut_at_random_offset or a short stall. Zero turns them off.
    void set_random_faults(std::chrono::milliseconds mean_period);

    Stats stats() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace lestash::test
