// Loading and checking the configuration (see include/lestash_sync/daemon/config.hpp).
// Every key is described once, in `keys()`: the file reader, the unknown-key
// message and the command-line flags all go through that list.
#include "lestash_sync/daemon/config.hpp"

#include <pwd.h>
#include <sys/un.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <variant>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace lestash {
namespace fs = std::filesystem;

namespace {

// Where a value came from: "FILE:LINE" or "--flag".
struct Origin {
    std::string where;
    bool from_file = false;
};

std::string home_directory() {
    if (const char* home = std::getenv("HOME"); home && *home)
        return home;
    if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir)
        return pw->pw_dir;
    throw ConfigError("cannot expand \"~\": HOME is not set and the user has no home directory");
}

std::string expand_home(const std::string& path) {
    if (path == "~" || path.rfind("~/", 0) == 0)
        return home_directory() + path.substr(1);
    return path;
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

// --- Checks shared by the file and the flags; each returns the value to keep.

std::string file_path(const std::string& key, const std::string& value, const Origin& origin) {
    if (value.empty())
        throw ConfigError(origin.where + ": " + key +
                          " is empty — give a path, or leave the key out for the default");
    if (value.rfind('~', 0) == 0 && value != "~" && value.rfind("~/", 0) != 0)
        throw ConfigError(origin.where + ": " + key + " = \"" + value +
                          "\": only \"~/\" (your own home) is expanded — write the full path");
    std::string path = expand_home(value);
    if (origin.from_file && !fs::path(path).is_absolute())
        throw ConfigError(origin.where + ": " + key + " = \"" + value +
                          "\" is relative — write an absolute path or one starting with \"~/\"");
    return path;
}

std::string database_path(const std::string& value, const Origin& origin) {
    return file_path("database.path", value, origin);
}

std::string socket_path(const std::string& value, const Origin& origin) {
    std::string path = file_path("control.socket", value, origin);
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        throw ConfigError(origin.where + ": control.socket \"" + path + "\" is " +
                          std::to_string(path.size()) + " bytes long; a Unix socket path must be " +
                          "shorter than " + std::to_string(sizeof(sockaddr_un::sun_path)) +
                          " — choose a shorter one");
    return path;
}

std::string postgres_conninfo(const std::string& value, const Origin& origin) {
    if (!value.empty())
        check_conninfo_syntax(value, origin.where);
    return value;
}

std::string replica_name(const std::string& value, const Origin& origin) {
    constexpr std::size_t longest = 64;
    const bool control = std::any_of(value.begin(), value.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    if (control || value.size() > longest)
        throw ConfigError(origin.where + ": replica.name must be at most " +
                          std::to_string(longest) +
                          " characters without line breaks or control characters");
    return value;
}

std::string log_level(const std::string& value, const Origin& origin) {
    static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error"};
    if (std::find(levels.begin(), levels.end(), value) == levels.end())
        throw ConfigError(origin.where + ": unknown log.level \"" + value +
                          "\" — expected one of: " + joined(levels));
    return value;
}

// --- The keys.

using TextCheck = std::string (*)(const std::string& value, const Origin& origin);
struct WholeNumber {
    int Config::*field;
    int min, max;
};
struct Text {
    std::string Config::*field;
    TextCheck check;
};
struct TableList {
    std::vector<std::string> Config::*field;
};

struct Key {
    std::string section, name;
    std::variant<Text, WholeNumber, TableList> kind;
    std::string dotted() const { return section + "." + name; }
};

const std::vector<Key>& keys() {
    static const std::vector<Key> all = {
        {"database", "path", Text{&Config::database, database_path}},
        {"postgres", "conninfo", Text{&Config::postgres, postgres_conninfo}},
        {"postgres", "response_timeout_seconds",
         WholeNumber{&Config::response_timeout_seconds, 1, 3600}},
        {"replica", "name", Text{&Config::replica_name, replica_name}},
        {"sync", "tables", TableList{&Config::tables}},
        {"sync", "push_batch", WholeNumber{&Config::push_batch, 1, 100000}},
        {"sync", "pull_batch", WholeNumber{&Config::pull_batch, 1, 100000}},
        {"sync", "debounce_ms", WholeNumber{&Config::debounce_ms, 0, 10000}},
        {"sync", "safety_pull_seconds", WholeNumber{&Config::safety_pull_seconds, 10, 86400}},
        {"sync", "max_backoff_seconds", WholeNumber{&Config::max_backoff_seconds, 1, 3600}},
        {"log", "level", Text{&Config::log_level, log_level}},
        {"control", "socket", Text{&Config::socket_path, socket_path}},
        {"control", "request_timeout_seconds",
         WholeNumber{&Config::request_timeout_seconds, 1, 3600}},
        {"media", "max_file_mb", WholeNumber{&Config::media_max_file_mb, 0, 1048576}},
    };
    return all;
}

const Key& key(std::string_view dotted) {
    for (const auto& k : keys())
        if (k.dotted() == dotted)
            return k;
    throw std::logic_error("no config key " + std::string(dotted));
}

std::vector<std::string> sections() {
    std::vector<std::string> out;
    for (const auto& k : keys())
        if (std::find(out.begin(), out.end(), k.section) == out.end())
            out.push_back(k.section);
    return out;
}

std::vector<std::string> names_in(const std::string& section) {
    std::vector<std::string> out;
    for (const auto& k : keys())
        if (k.section == section)
            out.push_back(k.name);
    return out;
}

// --- The file.

std::string type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "a whole number";
        case toml::node_type::floating_point:
            return "a decimal number";
        case toml::node_type::boolean:
            return "true/false";
        case toml::node_type::array:
            return "a list";
        case toml::node_type::table:
            return "a table";
        default:
            return "a date or time";
    }
}

class ConfigFile {
  public:
    ConfigFile(std::string path, const toml::table& root) : path_(std::move(path)), root_(root) {}

    void read_into(Config& config) const {
        check_names();
        for (const auto& k : keys())
            if (const toml::node* node = root_.at_path(k.dotted()).node())
                std::visit([&](const auto& kind) { read(k, kind, *node, config); }, k.kind);
    }

  private:
    Origin origin(const toml::source_region& where) const {
        return {path_ + ":" + std::to_string(where.begin.line), true};
    }

    [[noreturn]] void wrong_type(const Key& k, const toml::node& node,
                                 const std::string& expected) const {
        throw ConfigError(origin(node.source()).where + ": " + k.dotted() + " must be " + expected +
                          ", not " + type_name(node));
    }

    // Every section and key must be one we know; a typo would otherwise be
    // silently ignored.
    void check_names() const {
        const auto known_sections = sections();
        for (const auto& [name, node] : root_) {
            const std::string section(name.str());
            if (std::find(known_sections.begin(), known_sections.end(), section) ==
                known_sections.end()) {
                std::vector<std::string> headers;
                headers.reserve(known_sections.size());
                for (const auto& s : known_sections) headers.push_back("[" + s + "]");
                throw ConfigError(origin(name.source()).where + ": unknown " +
                                  (node.is_table()
                                       ? "section [" + section + "]"
                                       : "key \"" + section + "\" outside any section") +
                                  " — expected one of: " + joined(headers));
            }
            const toml::table* table = node.as_table();
            if (!table)
                throw ConfigError(origin(name.source()).where + ": \"" + section +
                                  "\" must be a section ([" + section + "]), not " +
                                  type_name(node));
            const auto known = names_in(section);
            for (const auto& [key_name, value] : *table) {
                if (std::find(known.begin(), known.end(), key_name.str()) != known.end())
                    continue;
                throw ConfigError(origin(key_name.source()).where + ": unknown key \"" + section +
                                  "." + std::string(key_name.str()) +
                                  "\" — expected one of: " + joined(known));
            }
        }
    }

    void read(const Key& k, const Text& text, const toml::node& node, Config& config) const {
        const auto value = node.value_exact<std::string>();
        if (!value)
            wrong_type(k, node, "a string in double quotes");
        config.*text.field = text.check(*value, origin(node.source()));
    }

    void read(const Key& k, const WholeNumber& number, const toml::node& node,
              Config& config) const {
        const std::string expected = "a whole number from " + std::to_string(number.min) + " to " +
                                     std::to_string(number.max);
        const auto value = node.value_exact<std::int64_t>();
        if (!value)
            wrong_type(k, node, expected);
        if (*value < number.min || *value > number.max)
            throw ConfigError(origin(node.source()).where + ": " + k.dotted() + " = " +
                              std::to_string(*value) + " is out of range — expected " + expected);
        config.*number.field = static_cast<int>(*value);
    }

    void read(const Key& k, const TableList& list, const toml::node& node, Config& config) const {
        const toml::array* array = node.as_array();
        if (!array)
            wrong_type(k, node, "a list of table names, like [\"items\", \"tags\"]");
        std::vector<std::string> names;
        for (const toml::node& item : *array) {
            const auto name = item.value_exact<std::string>();
            if (!name)
                wrong_type(k, item, "a list of table names in double quotes");
            names.push_back(*name);
        }
        const std::string where = origin(node.source()).where;
        if (names.empty())
            throw ConfigError(where + ": " + k.dotted() +
                              " is empty — list at least one table, or leave the key out to sync "
                              "the default set");
        try {
            select_tables(names);
        } catch (const ConfigError& e) {
            throw ConfigError(where + ": " + e.what());
        }
        config.*list.field = std::move(names);
    }

    std::string path_;
    const toml::table& root_;
};

void read_file(const std::string& path, Config& config) {
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw ConfigError("config file " + path +
                          " does not exist — create it from config/sync.toml.example, or leave "
                          "out --config to use the defaults");
    if (!fs::is_regular_file(path, ec))
        throw ConfigError("config file " + path + " is not a regular file — give the TOML file");
    if (!std::ifstream(path))
        throw ConfigError("cannot read config file " + path + ": " + std::strerror(errno) +
                          " — check its permissions");
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        throw ConfigError(path + ":" + std::to_string(e.source().begin.line) +
                          ": not valid TOML: " + std::string(e.description()));
    }
    ConfigFile(path, root).read_into(config);
    config.config_path = path;
}

void apply_flag(const std::optional<std::string>& value, const char* flag, std::string_view dotted,
                Config& config) {
    if (!value)
        return;
    const auto& text = std::get<Text>(key(dotted).kind);
    config.*text.field = text.check(*value, Origin{flag, false});
}

}  // namespace

std::vector<ConfigKeyDescription> describe_config_keys() {
    std::vector<ConfigKeyDescription> out;
    for (const auto& k : keys()) {
        ConfigKeyDescription d{k.dotted(), std::nullopt};
        if (const auto* number = std::get_if<WholeNumber>(&k.kind))
            d.accepted_range = std::pair{number->min, number->max};
        out.push_back(std::move(d));
    }
    return out;
}

void add_config_flags(CLI::App& app, CommandLineOverrides& flags) {
    app.add_option("--config", flags.config,
                   "config file (default: " + default_config_path() + " when it exists)");
    app.add_option("--db", flags.database,
                   "Le Stash database (default: " + default_database_path() + ")");
    app.add_option("--postgres", flags.postgres,
                   "Postgres to sync with: libpq conninfo, postgresql:// URI or service=NAME");
    app.add_option("--replica", flags.replica, "name of this device (default: from the hostname)");
    app.add_option("--socket", flags.socket,
                   "control socket (default: " + default_socket_path() + ")");
    app.add_option("--log-level", flags.log_level, "trace, debug, info, warn or error");
}

Config load_config(const CommandLineOverrides& flags) {
    Config config;
    if (flags.config)
        read_file(expand_home(*flags.config), config);
    else if (std::error_code ec; fs::exists(default_config_path(), ec))
        read_file(default_config_path(), config);
    apply_flag(flags.database, "--db", "database.path", config);
    apply_flag(flags.postgres, "--postgres", "postgres.conninfo", config);
    apply_flag(flags.replica, "--replica", "replica.name", config);
    apply_flag(flags.socket, "--socket", "control.socket", config);
    apply_flag(flags.log_level, "--log-level", "log.level", config);
    return config;
}

std::string keys_needing_restart(const Config& running, const Config& reloaded) {
    auto sorted = [](std::vector<std::string> tables) {
        std::sort(tables.begin(), tables.end());
        return tables;
    };
    std::vector<std::string> changed;
    if (reloaded.database != running.database)
        changed.emplace_back("[database] path");
    if (sorted(reloaded.tables) != sorted(running.tables))
        changed.emplace_back("[sync] tables");
    std::string out;
    for (std::size_t i = 0; i < changed.size(); ++i)
        out += (i == 0 ? "" : i + 1 == changed.size() ? " and " : ", ") + changed[i];
    return out;
}

std::string control_socket_path(const CommandLineOverrides& flags) {
    if (flags.socket)
        return socket_path(*flags.socket, Origin{"--socket", false});
    return load_config(flags).socket_path;
}

}  // namespace lestash
