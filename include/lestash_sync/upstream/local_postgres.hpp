// A private PostgreSQL server run from Debian's binaries: initdb into a data
// directory, started as an unprivileged user (initdb refuses root), listening
// on a unix socket and optionally on 127.0.0.1 at a free port, and stopped by
// pid. Tests and benchmarks use a throwaway one in a temp dir; the README's
// run command keeps one under ~/.local/share/lestash-sync/postgres. If the
// process that started the server dies, the server gets SIGQUIT through
// PR_SET_PDEATHSIG, so no server outlives its owner.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace lestash {

struct LocalPostgresOptions {
    // Where the cluster lives; empty for a temp dir removed at destruction.
    std::string data_dir;
    // Also listen on 127.0.0.1 at a free port (tests); else the unix socket only.
    bool listen_tcp = true;
    // fsync on; turn off only for throwaway servers in tests.
    bool durable = true;
};

class LocalPostgres {
  public:
    explicit LocalPostgres(LocalPostgresOptions options = {});
    ~LocalPostgres();
    LocalPostgres(const LocalPostgres&) = delete;
    LocalPostgres& operator=(const LocalPostgres&) = delete;

    // Superuser: over TCP on loopback (trust) when listening there, else the socket.
    std::string conninfo(const std::string& dbname = "postgres") const;
    // A role over TCP that must authenticate with its password (scram).
    std::string conninfo_as(const std::string& user, const std::string& password,
                            const std::string& dbname = "postgres") const;
    int port() const { return port_; }
    const std::string& socket_dir() const { return socket_dir_; }
    const std::string& data_dir() const { return data_dir_; }
    pid_t pid() const { return pid_; }

    // Creates an empty database and returns its name.
    std::string create_database(const std::string& prefix = "t");
    // Runs SQL as the superuser (one statement or a script).
    void exec(const std::string& sql, const std::string& dbname = "postgres") const;

    // Stops the server with the given pg_ctl shutdown mode's signal
    // ("smart", "fast" or "immediate"); start() brings it back on the same port.
    void stop(const std::string& mode = "fast");
    void start();
    bool running() const { return pid_ > 0; }

  private:
    LocalPostgresOptions options_;
    std::filesystem::path temp_dir_;  // owned, removed at destruction
    std::string data_dir_;
    std::string socket_dir_;
    std::string bin_dir_;
    int port_ = 5432;
    pid_t pid_ = -1;
    int next_db_ = 0;
};

}  // namespace lestash
