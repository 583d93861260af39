// The real PowerSync service and a phone, for the phone tests and for
// `lestash-bench phone`. The service (Open Edition, built from
// ../shared/powersync by tests/powersync/prepare.sh) runs with the project's
// own config/powersync/powersync.yaml and sync-config.yaml against a
// LocalPostgres; the phone is the PowerSync client core (@powersync/node,
// the Rust core the Flutter SDK runs) in a node process
// (tests/powersync/phone_agent.mjs), driven over a unix socket. Both are
// child processes killed by pid when their objects go, even when a test
// fails (ChildProcess).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/common/child_process.hpp"
#include "lestash_sync/upstream/local_postgres.hpp"

namespace lestash::test {

// What tests/powersync/prepare.sh put under one directory.
struct PowerSyncTools {
    std::filesystem::path dir;

    std::string node() const { return (dir / "service/node/bin/node").string(); }
    std::string service_root() const { return (dir / "service").string(); }
    std::string client_dir() const { return (dir / "client").string(); }
    // Raises, saying what to run, when prepare.sh has not filled `dir`.
    void require() const;
};

// One query of a sync config: a synced table and the columns sent, id first.
struct SyncedTable {
    std::string table;
    std::vector<std::string> columns;
};
// The queries of config/powersync/sync-config.yaml (or another file), in
// file order; understands what scripts/powersync-dart-schema understands.
std::vector<SyncedTable> read_sync_config(const std::string& path);
std::string project_sync_config();  // the checked-in config/powersync/sync-config.yaml

// The service's login role (LOGIN REPLICATION, in lestash_powersync) and its
// bucket storage database, made on `server` as docker/initdb/30-powersync.sh
// makes them for the compose file.
struct PowerSyncDatabase {
    std::string lestash_database;
    std::string storage_database;
    std::string user;
    std::string password;
};
PowerSyncDatabase prepare_powersync_database(LocalPostgres& server,
                                             const std::string& lestash_database);

class PowerSyncService {
  public:
    // Starts the service on a free loopback port with config/powersync/
    // powersync.yaml; its log goes to `dir`/powersync.log.
    PowerSyncService(const PowerSyncTools& tools, const LocalPostgres& server,
                     const PowerSyncDatabase& database, const std::filesystem::path& dir);
    PowerSyncService(const PowerSyncService&) = delete;
    PowerSyncService& operator=(const PowerSyncService&) = delete;

    // Until it listens and has replicated its first snapshot; raises with
    // its log if it exits or `timeout` passes.
    void wait_ready(std::chrono::seconds timeout = std::chrono::seconds(120));
    // Seconds from start until the first snapshot was replicated.
    double seconds_to_ready() const { return ready_seconds_; }

    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
    const std::string& api_token() const { return api_token_; }
    // The HS256 key its client tokens are signed with (PS_JWT_HS256_KEY).
    const std::string& jwt_key() const { return jwt_key_; }
    // A client token (scripts/powersync-token, one hour).
    std::string client_token() const;
    std::string log() const;
    pid_t pid() const { return child_.pid(); }

  private:
    std::filesystem::path log_path_;
    int port_;
    std::string jwt_key_, api_token_;
    std::chrono::steady_clock::time_point started_;
    double ready_seconds_ = 0;
    ChildProcess child_;
};

// lestash-endpoint serving uploads for `database` on a free loopback port,
// signing tokens with `hs256_key` (base64url), telling phones the PowerSync
// service is at `powersync_url`; as a login role in the lestash_endpoint
// group. `extra` is appended to the config file. Its log goes to
// `dir`/endpoint.log.
class EndpointProcess {
  public:
    EndpointProcess(LocalPostgres& server, const std::string& database,
                    const std::string& hs256_key, const std::string& powersync_url,
                    const std::filesystem::path& dir, const std::string& extra = "");
    EndpointProcess(const EndpointProcess&) = delete;
    EndpointProcess& operator=(const EndpointProcess&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    int port() const { return port_; }
    pid_t pid() const { return child_->pid(); }
    // `lestash-endpoint pair --name NAME`: the one-time code it printed.
    std::string pairing_code(const std::string& name) const;
    const std::string& config_path() const { return config_; }
    std::string log() const;

  private:
    std::filesystem::path log_path_;
    std::string config_;
    int port_;
    std::unique_ptr<ChildProcess> child_;
};

// POST `body` (JSON) to `url` (http://host:port/path) with an optional bearer
// token; the answer's body, whatever its status. Raises when no answer came.
std::string http_post(const std::string& url, const std::string& body, const std::string& bearer);

// Where a writing phone sends its uploads (through a proxy, say) and asks
// for tokens and pairing.
struct PhoneUploads {
    std::string upload_url, token_url;
};

// A phone: its own SQLite file under `dir`, the schema that
// scripts/powersync-dart-schema --json prints for `admin_conninfo`. With
// `uploads`, its connector writes through lestash-endpoint once paired.
class Phone {
  public:
    Phone(const PowerSyncTools& tools, const PowerSyncService& service,
          const std::string& admin_conninfo, const std::filesystem::path& dir,
          const std::optional<PhoneUploads>& uploads = std::nullopt);
    ~Phone();
    Phone(const Phone&) = delete;
    Phone& operator=(const Phone&) = delete;

    // One request (see phone_agent.mjs); raises with the agent's error.
    nlohmann::json call(nlohmann::json request,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));
    // Connects and waits for the first complete sync; its milliseconds.
    double connect();
    // Every row of each table as the phone holds it: [[typeof, text], ...] per row, by id.
    nlohmann::json dump(const std::vector<SyncedTable>& tables);
    // Until the query's first value is 1; its milliseconds.
    double wait_until(const std::string& sql, const nlohmann::json& params,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
    std::string log() const;

  private:
    std::filesystem::path log_path_;
    ChildProcess child_;
    int socket_ = -1;
    int next_id_ = 1;
    std::string buffer_;
};

// The synced tables in Postgres, in the phone's dump format: what the phone
// must hold (uuid and text as text, booleans 0/1, integers, NULL as NULL).
nlohmann::json postgres_as_the_phone_sees_it(const std::string& conninfo,
                                             const std::vector<SyncedTable>& tables);
// "" when equal; else the first differences, readable.
std::string dump_differences(const nlohmann::json& expected, const nlohmann::json& actual);

}  // namespace lestash::test
