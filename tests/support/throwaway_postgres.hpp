// A private PostgreSQL server for one test binary: initdb into a temp dir,
// started as an unprivileged user (initdb refuses root), listening on a unix
// socket in that dir and on 127.0.0.1 at a free port. Stopped by pid when the
// object is destroyed; if the test process dies instead, the server gets
// SIGQUIT through PR_SET_PDEATHSIG, so no server outlives its test.
#pragma once

#include <sys/types.h>

#include <string>

#include "temp_dir.hpp"

namespace lestash::test {

class ThrowawayPostgres {
public:
    ThrowawayPostgres();
    ~ThrowawayPostgres();
    ThrowawayPostgres(const ThrowawayPostgres&) = delete;
    ThrowawayPostgres& operator=(const ThrowawayPostgres&) = delete;

    // Superuser over TCP on loopback (trust), to `dbname`.
    std::string conninfo(const std::string& dbname = "postgres") const;
    // A role over TCP that must authenticate with its password (scram).
    std::string conninfo_as(const std::string& user, const std::string& password,
                            const std::string& dbname = "postgres") const;
    int port() const { return port_; }
    const std::string& socket_dir() const { return socket_dir_; }
    pid_t pid() const { return pid_; }

    // Creates an empty database and returns its name.
    std::string create_database(const std::string& prefix = "t");
    // Runs SQL as the superuser (one statement or a script).
    void exec(const std::string& sql, const std::string& dbname = "postgres") const;

    // Stops the server with the given pg_ctl shutdown mode's signal
    // ("smart", "fast" or "immediate") and starts it again on the same port.
    void stop(const std::string& mode = "fast");
    void start();
    bool running() const { return pid_ > 0; }

private:
    TempDir dir_;
    std::string data_dir_;
    std::string socket_dir_;
    std::string bin_dir_;
    int port_ = 0;
    pid_t pid_ = -1;
    int next_db_ = 0;
};

// The shared server of this test binary, started on first use.
ThrowawayPostgres& shared_postgres();

}  // namespace lestash::test
