// The configuration file and flags: defaults, precedence, and the messages
// that point at the file, line and key when something is wrong.
#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/daemon/config.hpp"
#include "scoped_env.hpp"
#include "temp_dir.hpp"

using Catch::Matchers::Contains;
using lestash::CommandLineOverrides;
using lestash::Config;
using lestash::load_config;
using lestash::redact_conninfo;

namespace {

// A home of its own for each test, so the user's real files never leak in.
struct IsolatedHome {
    lestash::test::TempDir dir;
    lestash::test::ScopedEnv home{"HOME", dir.path().string()};
    lestash::test::ScopedEnv config_home{"XDG_CONFIG_HOME", dir.file("config")};
    lestash::test::ScopedEnv runtime{"XDG_RUNTIME_DIR", dir.file("run")};

    std::string write(const std::string& name, const std::string& text) const {
        const auto path = dir.path() / name;
        std::filesystem::create_directories(path.parent_path());
        std::ofstream(path) << text;
        return path.string();
    }
};

CommandLineOverrides with_config(const std::string& path) {
    CommandLineOverrides flags;
    flags.config = path;
    return flags;
}

// The message of the ConfigError that loading raises.
std::string load_error(const CommandLineOverrides& flags) {
    try {
        load_config(flags);
    } catch (const lestash::ConfigError& e) {
        return e.what();
    }
    FAIL("the configuration was accepted");
    return {};
}

std::string file_error(const IsolatedHome& home, const std::string& text) {
    return load_error(with_config(home.write("sync.toml", text)));
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<Config> {
    static std::string convert(const Config& c) {
        std::string tables;
        for (const auto& t : c.tables) tables += t + " ";
        return "{config_path=" + c.config_path + " database=" + c.database +
               " postgres=" + c.postgres + " replica_name=" + c.replica_name + " tables=" + tables +
               "push_batch=" + std::to_string(c.push_batch) +
               " pull_batch=" + std::to_string(c.pull_batch) +
               " debounce_ms=" + std::to_string(c.debounce_ms) +
               " safety_pull_seconds=" + std::to_string(c.safety_pull_seconds) +
               " max_backoff_seconds=" + std::to_string(c.max_backoff_seconds) +
               " log_level=" + c.log_level + " socket_path=" + c.socket_path + "}";
    }
};
}  // namespace Catch

TEST_CASE("without a file or flags the defaults are used", "[config]") {
    IsolatedHome home;
    const Config c = load_config({});
    CHECK(c.config_path.empty());
    CHECK(c.database == home.dir.file("config") + "/lestash/lestash.db");
    CHECK(c.socket_path == home.dir.file("run") + "/lestash/syncd.sock");
    CHECK(c.postgres.empty());
    CHECK(c.push_batch == 500);
    CHECK(c.tables.size() == 11);
    CHECK(c.tables == lestash::default_table_names());
}

TEST_CASE("the example file documents exactly the defaults", "[config]") {
    IsolatedHome home;
    // The example writes database.path as "~/.config/...", the default
    // when XDG_CONFIG_HOME is not set.
    lestash::test::ScopedEnv no_config_home("XDG_CONFIG_HOME", std::nullopt);
    const std::string example = LESTASH_SOURCE_DIR "/config/sync.toml.example";
    Config expected;
    expected.config_path = example;
    CHECK(load_config(with_config(example)) == expected);
}

namespace {

// The keys sync.toml(5) documents ("section.name"), each with the roff text
// of its entry: `.SS "[section]"`, then `.TP` and `\fBname\fR = ...`.
std::map<std::string, std::string> documented_keys(const std::string& page_path) {
    std::ifstream page(page_path);
    REQUIRE(page);
    std::map<std::string, std::string> out;
    std::string line, section, *entry = nullptr;
    bool heading_next = false;
    while (std::getline(page, line)) {
        if (line.rfind(".SS \"[", 0) == 0) {
            section = line.substr(6, line.find(']') - 6);  // .SS "[name]"
            entry = nullptr;
        } else if (line.rfind(".SH", 0) == 0) {
            section.clear();
            entry = nullptr;
        } else if (line == ".TP") {
            heading_next = !section.empty();
            entry = nullptr;
        } else if (heading_next && line.rfind("\\fB", 0) == 0) {
            const auto name = line.substr(3, line.find("\\fR") - 3);
            entry = &out[section + "." + name];
            heading_next = false;
        } else if (entry) {
            *entry += line + "\n";
        }
    }
    return out;
}

}  // namespace

TEST_CASE("sync.toml(5) documents every key the parser accepts, and no other", "[config][docs]") {
    const auto documented = documented_keys(LESTASH_MAN_DIR "/sync.toml.5");
    std::set<std::string> accepted;
    for (const auto& key : lestash::describe_config_keys()) {
        INFO(key.dotted << " (src/daemon/config.cpp) in config/sync.toml.example");
        accepted.insert(key.dotted);
        REQUIRE(documented.count(key.dotted) == 1);
        const auto& entry = documented.at(key.dotted);
        CHECK(entry.size() > 20);  // its comment, not just a name
        if (key.accepted_range)
            CHECK_THAT(entry, Contains(std::to_string(key.accepted_range->first) + " to " +
                                       std::to_string(key.accepted_range->second)));
    }
    for (const auto& [key, entry] : documented) {
        INFO(key << " is documented but the parser refuses it");
        CHECK(accepted.count(key) == 1);
    }
}

TEST_CASE("a client finds the control socket as the daemon does", "[config]") {
    IsolatedHome home;
    CommandLineOverrides flags;
    CHECK(lestash::control_socket_path(flags) == home.dir.file("run") + "/lestash/syncd.sock");
    home.write("config/lestash/sync.toml", "[control]\nsocket = \"~/s.sock\"\n");
    CHECK(lestash::control_socket_path(flags) == home.dir.file("s.sock"));
    flags.config = home.write("other.toml", "[control]\nsocket = \"/tmp/other.sock\"\n");
    CHECK(lestash::control_socket_path(flags) == "/tmp/other.sock");
    // --socket wins, and then no file is read (a broken one included).
    home.write("config/lestash/sync.toml", "[control\n");
    flags.config.reset();
    flags.socket = "/tmp/given.sock";
    CHECK(lestash::control_socket_path(flags) == "/tmp/given.sock");
}

TEST_CASE("the file overrides the defaults and flags override the file", "[config]") {
    IsolatedHome home;
    const auto path = home.write("sync.toml", R"(
[database]
path = "/data/file.db"
[postgres]
conninfo = "host=file.example dbname=lestash"
[replica]
name = "laptop"
[sync]
tables = ["items", "tags", "item_tags"]
push_batch = 10
pull_batch = 20
debounce_ms = 0
safety_pull_seconds = 30
max_backoff_seconds = 5
[log]
level = "debug"
[control]
socket = "~/s.sock"
)");
    CommandLineOverrides flags = with_config(path);
    const Config from_file = load_config(flags);
    CHECK(from_file.config_path == path);
    CHECK(from_file.database == "/data/file.db");
    CHECK(from_file.postgres == "host=file.example dbname=lestash");
    CHECK(from_file.replica_name == "laptop");
    CHECK(from_file.tables == std::vector<std::string>{"items", "tags", "item_tags"});
    CHECK(from_file.push_batch == 10);
    CHECK(from_file.pull_batch == 20);
    CHECK(from_file.debounce_ms == 0);
    CHECK(from_file.safety_pull_seconds == 30);
    CHECK(from_file.max_backoff_seconds == 5);
    CHECK(from_file.log_level == "debug");
    CHECK(from_file.socket_path == home.dir.path().string() + "/s.sock");

    flags.database = "/flag/db.db";
    flags.postgres = "service=flag";
    flags.replica = "desk";
    flags.socket = "/tmp/flag.sock";
    flags.log_level = "warn";
    const Config from_flags = load_config(flags);
    CHECK(from_flags.database == "/flag/db.db");
    CHECK(from_flags.postgres == "service=flag");
    CHECK(from_flags.replica_name == "desk");
    CHECK(from_flags.socket_path == "/tmp/flag.sock");
    CHECK(from_flags.log_level == "warn");
    CHECK(from_flags.push_batch == 10);  // no flag: the file's value stays
}

TEST_CASE("the default config file is read when no --config is given", "[config]") {
    IsolatedHome home;
    const auto path = home.write("config/lestash/sync.toml", "[sync]\npush_batch = 7\n");
    const Config c = load_config({});
    CHECK(c.config_path == path);
    CHECK(c.push_batch == 7);
}

TEST_CASE("a config file given with --config must exist", "[config]") {
    IsolatedHome home;
    const auto missing = home.dir.file("nope.toml");
    const auto message = load_error(with_config(missing));
    CHECK_THAT(message, Contains(missing) && Contains("does not exist"));
    CHECK_THAT(load_error(with_config(home.dir.path().string())), Contains("not a regular file"));
}

TEST_CASE("an unknown key is rejected with its file and line", "[config]") {
    IsolatedHome home;
    const auto path =
        home.write("sync.toml", "# comment\n\n[sync]\npush_batch = 5\n\n\nbatchsize = 3\n");
    const auto message = load_error(with_config(path));
    CHECK_THAT(message, Contains(path + ":7: unknown key \"sync.batchsize\""));
    CHECK_THAT(message, Contains("expected one of: tables, push_batch, pull_batch"));
}

TEST_CASE("an unknown section, a nested table and a bare key are rejected with their line",
          "[config]") {
    IsolatedHome home;
    CHECK_THAT(file_error(home, "\n[synk]\npush_batch = 1\n"),
               Contains(":2: unknown section [synk]") && Contains("[sync]"));
    CHECK_THAT(file_error(home, "[sync]\n[sync.extra]\nx = 1\n"),
               Contains(":2: unknown key \"sync.extra\""));
    CHECK_THAT(file_error(home, "level = \"info\"\n"),
               Contains(":1: unknown key \"level\" outside any section"));
    CHECK_THAT(file_error(home, "log = \"info\"\n"),
               Contains(":1: \"log\" must be a section ([log]), not a string"));
}

TEST_CASE("a value of the wrong type is rejected with what is expected", "[config]") {
    IsolatedHome home;
    CHECK_THAT(
        file_error(home, "[sync]\npush_batch = \"500\"\n"),
        Contains(":2: sync.push_batch must be a whole number from 1 to 100000, not a string"));
    CHECK_THAT(file_error(home, "[sync]\npull_batch = 2.5\n"),
               Contains("sync.pull_batch must be a whole number") && Contains("decimal number"));
    CHECK_THAT(file_error(home, "[database]\npath = 5\n"),
               Contains(":2: database.path must be a string"));
    CHECK_THAT(file_error(home, "[sync]\ntables = \"items\"\n"),
               Contains("sync.tables must be a list of table names"));
    CHECK_THAT(file_error(home, "[sync]\ntables = [\"items\",\n 3]\n"),
               Contains(":3: sync.tables must be a list of table names in double quotes"));
}

TEST_CASE("numbers outside their range are rejected with the range", "[config]") {
    IsolatedHome home;
    CHECK_THAT(file_error(home, "[sync]\npush_batch = 0\n"),
               Contains(":2: sync.push_batch = 0 is out of range — expected a whole number from 1 "
                        "to 100000"));
    CHECK_THAT(file_error(home, "[sync]\npull_batch = 100001\n"), Contains("sync.pull_batch"));
    CHECK_THAT(file_error(home, "[sync]\ndebounce_ms = -1\n"), Contains("0 to 10000"));
    CHECK_THAT(file_error(home, "[sync]\nsafety_pull_seconds = 86401\n"),
               Contains("sync.safety_pull_seconds"));
    CHECK_THAT(file_error(home, "[sync]\nmax_backoff_seconds = 0\n"),
               Contains("sync.max_backoff_seconds"));
    CHECK_THAT(file_error(home, "[sync]\npush_batch = 9999999999999\n"), Contains("out of range"));
}

TEST_CASE("an unknown log level is rejected from the file and from --log-level", "[config]") {
    IsolatedHome home;
    CHECK_THAT(file_error(home, "[log]\nlevel = \"loud\"\n"),
               Contains(":2: unknown log.level \"loud\" — expected one of: trace, debug, info, "
                        "warn, error"));
    CommandLineOverrides flags;
    flags.log_level = "verbose";
    CHECK_THAT(load_error(flags), Contains("--log-level: unknown log.level \"verbose\""));
}

TEST_CASE("a TOML syntax error is reported with its file and line", "[config]") {
    IsolatedHome home;
    const auto path = home.write("sync.toml", "[sync]\npush_batch = 5\npull_batch = = 3\n");
    CHECK_THAT(load_error(with_config(path)), Contains(path + ":3: not valid TOML"));
}

TEST_CASE("table names are checked, with the line of the tables key", "[config]") {
    IsolatedHome home;
    CHECK_THAT(file_error(home, "[sync]\n\ntables = [\"items\", \"itemz\"]\n"),
               Contains(":3: unknown table \"itemz\""));
    CHECK_THAT(file_error(home, "[sync]\ntables = [\"items\", \"log_entries\"]\n"),
               Contains(":2: table \"log_entries\" is never synced"));
    CHECK_THAT(file_error(home, "[sync]\ntables = [\"item_tags\"]\n"),
               Contains("cannot be synced without"));
    CHECK_THAT(file_error(home, "[sync]\ntables = []\n"), Contains(":2: sync.tables is empty"));
}

TEST_CASE("a malformed conninfo is rejected without connecting, naming where it came from",
          "[config]") {
    IsolatedHome home;
    CHECK_THAT(file_error(home, "[postgres]\nconninfo = \"host=x bogus=1 password=hunter2\"\n"),
               Contains(":2: invalid Postgres connection string (invalid connection option "
                        "\"bogus\")"));
    CommandLineOverrides flags;
    flags.postgres = "host=x password='hunter2";
    CHECK_THAT(load_error(flags), Contains("--postgres: invalid Postgres connection string"));
    // Well-formed strings pass, even when nothing listens there.
    flags.postgres = "postgresql://me@127.0.0.1:1/lestash?sslmode=require";
    CHECK(load_config(flags).postgres == *flags.postgres);
}

TEST_CASE("an error about a conninfo never shows its password", "[config]") {
    IsolatedHome home;
    for (const std::string conninfo :
         {"postgresql://me:hunter2@[::1/db", "postgresql://me:hunter2%zz@host/db",
          "postgresql://me@host/db?password=hunter2%zz", "password hunter2 host=x"}) {
        CommandLineOverrides flags;
        flags.postgres = conninfo;
        const auto message = load_error(flags);
        INFO(message);
        CHECK_THAT(message, Contains("invalid Postgres connection string"));
        CHECK_THAT(message, !Contains("hunter2"));
    }
}

TEST_CASE(
    "a leading ~ in a path is the home directory, other relative paths in the file are "
    "refused",
    "[config]") {
    IsolatedHome home;
    CHECK(load_config(with_config(home.write("sync.toml", "[database]\npath = \"~/x.db\"\n")))
              .database == home.dir.path().string() + "/x.db");
    CHECK_THAT(file_error(home, "[database]\npath = \"x.db\"\n"),
               Contains(":2: database.path = \"x.db\" is relative"));
    CHECK_THAT(file_error(home, "[database]\npath = \"~bob/x.db\"\n"),
               Contains("only \"~/\" (your own home) is expanded"));
    CHECK_THAT(file_error(home, "[database]\npath = \"\"\n"), Contains("database.path is empty"));
    CommandLineOverrides flags;
    flags.database = "relative.db";  // relative to the working directory, as usual for flags
    CHECK(load_config(flags).database == "relative.db");
}

TEST_CASE("a control socket path too long for a Unix socket is refused", "[config]") {
    IsolatedHome home;
    CommandLineOverrides flags;
    flags.socket = "/tmp/" + std::string(120, 's') + ".sock";
    CHECK_THAT(load_error(flags), Contains("--socket: control.socket") && Contains("shorter than"));
}

TEST_CASE("a replica name with a line break is refused", "[config]") {
    IsolatedHome home;
    CHECK_THAT(file_error(home, "[replica]\nname = \"a\\nb\"\n"),
               Contains(":2: replica.name must be at most 64 characters"));
}

TEST_CASE("the config flags land in the overrides", "[config]") {
    CLI::App app;
    CommandLineOverrides flags;
    lestash::add_config_flags(app, flags);
    const char* argv[] = {"lestash-syncd", "--config",    "/c.toml",   "--db", "/d.db",
                          "--postgres",    "service=x",   "--replica", "r",    "--socket",
                          "/s.sock",       "--log-level", "debug"};
    app.parse(static_cast<int>(std::size(argv)), argv);
    CHECK(flags.config == "/c.toml");
    CHECK(flags.database == "/d.db");
    CHECK(flags.postgres == "service=x");
    CHECK(flags.replica == "r");
    CHECK(flags.socket == "/s.sock");
    CHECK(flags.log_level == "debug");

    CommandLineOverrides none;
    CLI::App bare;
    lestash::add_config_flags(bare, none);
    const char* no_args[] = {"lestash-syncd"};
    bare.parse(1, no_args);
    CHECK_FALSE(none.config);
    CHECK_FALSE(none.postgres);
}

TEST_CASE("redact_conninfo hides keyword=value passwords, quoted, escaped or not", "[config]") {
    CHECK(redact_conninfo("host=db user=me password=hunter2 dbname=x") ==
          "host=db user=me password=******** dbname=x");
    CHECK(redact_conninfo("password = 'hunter 2' host=db") == "password = ******** host=db");
    CHECK(redact_conninfo(R"(password='it\'s' host=db)") == "password=******** host=db");
    CHECK(redact_conninfo(R"(password=a\ b host=db)") == "password=******** host=db");
    CHECK(redact_conninfo("host=db password=") == "host=db password=");
    CHECK(redact_conninfo("dbname='postgresql://me:hunter2@db/x' host=y") ==
          "dbname='postgresql://me:********@db/x' host=y");
}

TEST_CASE("redact_conninfo hides passwords in postgresql:// URIs", "[config]") {
    CHECK(redact_conninfo("postgresql://me:hunter2@db.example.org:5432/lestash") ==
          "postgresql://me:********@db.example.org:5432/lestash");
    CHECK(redact_conninfo("postgres://me:p%40ss@db/x?sslmode=require&password=two") ==
          "postgres://me:********@db/x?sslmode=require&password=********");
    CHECK(redact_conninfo("postgresql://db/x?pass%77ord=three&user=me") ==
          "postgresql://db/x?pass%77ord=********&user=me");
    CHECK(redact_conninfo("POSTGRESQL://me:hunter2@db/x") == "POSTGRESQL://me:********@db/x");
}

TEST_CASE("redact_conninfo leaves a conninfo without a password as it is", "[config]") {
    for (const std::string conninfo :
         {"host=db dbname=lestash user=me sslmode=verify-full", "service=lestash",
          "postgresql://me@db:5432/lestash?sslmode=require", "postgresql:///lestash", ""})
        CHECK(redact_conninfo(conninfo) == conninfo);
}

TEST_CASE("a reload names the database path and the tables as needing a restart, nothing else",
          "[config][reload]") {
    const Config running;
    Config reloaded = running;
    reloaded.postgres = "host=elsewhere";
    reloaded.replica_name = "renamed";
    reloaded.socket_path = "/tmp/elsewhere.sock";
    reloaded.request_timeout_seconds = 5;
    reloaded.max_backoff_seconds = 5;
    reloaded.log_level = "debug";
    reloaded.tables.assign(running.tables.rbegin(), running.tables.rend());
    CHECK(lestash::keys_needing_restart(running, reloaded).empty());  // the same tables
    reloaded.database = "/elsewhere/lestash.db";
    CHECK(lestash::keys_needing_restart(running, reloaded) == "[database] path");
    reloaded.tables = {"items"};
    CHECK(lestash::keys_needing_restart(running, reloaded) == "[database] path and [sync] tables");
    reloaded.database = running.database;
    CHECK(lestash::keys_needing_restart(running, reloaded) == "[sync] tables");
}
