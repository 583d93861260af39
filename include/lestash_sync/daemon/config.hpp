// lestash-syncd's configuration: a TOML file (default
// ~/.config/lestash/sync.toml) with command-line flags on top. Every key is
// documented in config/sync.toml.example; unknown keys and bad values are
// refused with the file, the line, the key and what is expected.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/daemon/conninfo.hpp"  // redact_conninfo, for whoever shows Config::postgres
#include "lestash_sync/daemon/paths.hpp"

namespace CLI {
class App;
}

namespace lestash {

struct Config {
    std::string config_path;  // the file that was read; empty: defaults and flags only
    std::string database = default_database_path();
    std::string postgres;      // libpq conninfo or "service=NAME"; empty: not configured
    std::string replica_name;  // empty: derived from the hostname
    std::vector<std::string> tables = {"items",     "item_history", "tags",
                                       "item_tags", "sources",      "sync_log"};
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

// Reads --config (which must exist), else the default path when it exists,
// else nothing; then applies the flags. Raises ConfigError naming the file
// and line (or the flag), the key, and what is expected.
Config load_config(const CommandLineOverrides& flags);

}  // namespace lestash
