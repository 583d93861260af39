// lestash-syncd's configuration: a TOML file (default
// ~/.config/lestash/sync.toml) with command-line flags on top. Every key is
// documented in config/sync.toml.example; unknown keys and bad values are
// refused with the file, the line, the key and what is expected.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lestash_sync/daemon/conninfo.hpp"  // redact_conninfo, for whoever shows Config::postgres
#include "lestash_sync/daemon/paths.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace CLI {
class App;
}

namespace lestash {

struct Config {
    std::string config_path;  // the file that was read; empty: defaults and flags only
    std::string database = default_database_path();
    std::string postgres;      // libpq conninfo or "service=NAME"; empty: not configured
    std::string replica_name;  // empty: derived from the hostname
    std::vector<std::string> tables = default_table_names();
    int push_batch = 500;
    int pull_batch = 2000;
    int debounce_ms = 2;
    int safety_pull_seconds = 300;
    int max_backoff_seconds = 60;
    int response_timeout_seconds = 60;
    std::string log_level = "info";
    std::string socket_path = default_socket_path();
    int request_timeout_seconds = 30;
    int media_max_file_mb = 1024;  // 0: no media file is uploaded

    bool operator==(const Config&) const = default;
};

// Values given on the command line; each one wins over the file.
struct CommandLineOverrides {
    std::optional<std::string> config, database, postgres, replica, socket, log_level;
};

// Registers --config, --db, --postgres, --replica, --socket and --log-level.
void add_config_flags(CLI::App& app, CommandLineOverrides& flags);

// A key the file may hold, as the parser knows it: for the docs and their
// tests (sync.toml(5) must document exactly these).
struct ConfigKeyDescription {
    std::string dotted;                                 // "sync.push_batch"
    std::optional<std::pair<int, int>> accepted_range;  // whole numbers only
};
std::vector<ConfigKeyDescription> describe_config_keys();

// Reads --config (which must exist), else the default path when it exists,
// else nothing; then applies the flags. Raises ConfigError naming the file
// and line (or the flag), the key, and what is expected.
Config load_config(const CommandLineOverrides& flags);

// A reload (SIGHUP) applies every key but the database and the tables it
// attached with, which need a restart: those of them `reloaded` changes,
// as "[database] path and [sync] tables", or "" when none.
std::string keys_needing_restart(const Config& running, const Config& reloaded);

// The control socket a client uses, found as the daemon finds it: --socket
// (no file read then), else [control] socket in the config file (--config,
// else the default one when it exists), else the default path.
std::string control_socket_path(const CommandLineOverrides& flags);

}  // namespace lestash
