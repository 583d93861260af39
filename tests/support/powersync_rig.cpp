// The PowerSync service and a phone as child processes (see powersync_rig.hpp).
#include "powersync_rig.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "lestash_sync/common/uuid.hpp"

namespace lestash::test {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string source_path(const std::string& relative) {
    return std::string(LESTASH_SOURCE_DIR) + "/" + relative;
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A project script's standard output without its last newline; raises with
// its error output when it fails.
std::string run_script(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe)
        throw std::runtime_error("cannot run " + command);
    std::string out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    const int status = ::pclose(pipe);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error(command + " failed (" +
                                 (WIFEXITED(status)
                                      ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "killed by a signal") +
                                 "; its error output is above)");
    if (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    ::close(fd);
    if (!ok)
        throw std::runtime_error("cannot find a free port on 127.0.0.1");
    return ntohs(addr.sin_port);
}

std::string tail(const std::string& text, std::size_t n = 6000) {
    return text.size() > n ? "...\n" + text.substr(text.size() - n) : text;
}

std::vector<std::string> service_argv(const PowerSyncTools& tools) {
    tools.require();
    // loopback.cjs: the service listens on all interfaces; tests serve loopback only.
    return {tools.node(),
            "--require",
            source_path("tests/powersync/loopback.cjs"),
            tools.service_root() + "/service/lib/entry.js",
            "start",
            "-r",
            "unified",
            "-c",
            source_path("config/powersync/powersync.yaml")};
}

std::vector<std::string> service_env(const LocalPostgres& server, const PowerSyncDatabase& db,
                                     int port, const std::string& jwt_key,
                                     const std::string& api_token) {
    return {"PS_PG_HOST=127.0.0.1",
            "PS_PG_PORT=" + std::to_string(server.port()),
            "PS_PG_DATABASE=" + db.lestash_database,
            "PS_STORAGE_DATABASE=" + db.storage_database,
            "PS_PG_USER=" + db.user,
            "PS_PG_PASSWORD=" + db.password,
            "PS_PG_SSLMODE=disable",
            "PS_PORT=" + std::to_string(port),
            "PS_JWT_HS256_KEY=" + jwt_key,
            "PS_API_TOKEN=" + api_token};
}

// Writes the phone's schema (the generator's JSON) and a copy of the agent
// beside the client's node_modules (node finds packages from the script's
// own directory); the agent's command line.
std::vector<std::string> phone_argv(const PowerSyncTools& tools, const PowerSyncService& service,
                                    const std::string& admin_conninfo, const fs::path& dir,
                                    const std::optional<PhoneUploads>& uploads) {
    tools.require();
    fs::create_directories(dir);
    const std::string schema = (dir / "schema.json").string();
    std::ofstream(schema) << run_script(source_path("scripts/powersync-dart-schema") +
                                        " --json --postgres " + shell_quote(admin_conninfo));
    const std::string agent = tools.client_dir() + "/phone_agent.mjs";
    fs::copy_file(source_path("tests/powersync/phone_agent.mjs"), agent,
                  fs::copy_options::overwrite_existing);
    std::vector<std::string> argv = {tools.node(),     agent,
                                     "--socket",       (dir / "agent.sock").string(),
                                     "--db-dir",       dir.string(),
                                     "--schema",       schema,
                                     "--endpoint",     service.endpoint(),
                                     "--token",        service.client_token(),
                                     "--api-token",    service.api_token(),
                                     "--service-root", tools.service_root()};
    if (uploads)
        argv.insert(argv.end(),
                    {"--upload-url", uploads->upload_url, "--token-url", uploads->token_url});
    return argv;
}

}  // namespace

void PowerSyncTools::require() const {
    for (const auto& path : {node(), service_root() + "/service/lib/entry.js",
                             client_dir() + "/node_modules/@powersync/node"})
        if (!fs::exists(path))
            throw std::runtime_error("no " + path + ": run tests/powersync/prepare.sh SOURCE_DIR " +
                                     dir.string() +
                                     " (or cmake --build BUILD_DIR --target powersync-tools)");
}

std::vector<SyncedTable> read_sync_config(const std::string& path) {
    static const std::regex select_line(R"(^\s*-\s*SELECT\b.*)", std::regex::icase);
    static const std::regex query(R"(^\s*-\s*SELECT\s+(.+?)\s+FROM\s+lestash\.(\w+)\s*$)",
                                  std::regex::icase);
    if (!fs::exists(path))
        throw std::runtime_error("no sync config at " + path);
    std::istringstream lines(read_text(path));
    std::vector<SyncedTable> out;
    std::string line;
    while (std::getline(lines, line)) {
        if (!std::regex_match(line, select_line))
            continue;
        std::smatch m;
        if (!std::regex_match(line, m, query))
            throw std::runtime_error(
                path + ": not a plain `- SELECT columns FROM lestash.table`: " + line);
        SyncedTable t{m[2].str(), {}};
        std::istringstream columns(m[1].str());
        for (std::string c; std::getline(columns, c, ',');)
            t.columns.push_back(std::regex_replace(c, std::regex(R"(^\s+|\s+$)"), ""));
        out.push_back(std::move(t));
    }
    return out;
}

std::string project_sync_config() {
    return source_path("config/powersync/sync-config.yaml");
}

PowerSyncDatabase prepare_powersync_database(LocalPostgres& server,
                                             const std::string& lestash_database) {
    PowerSyncDatabase db{lestash_database, "", "lestash_powersync_test", "powersync-test-pw"};
    server.exec("DO $$ BEGIN CREATE ROLE " + db.user + " LOGIN REPLICATION PASSWORD '" +
                db.password +
                "' IN ROLE lestash_powersync; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    db.storage_database = server.create_database("powersync_storage");
    server.exec("ALTER DATABASE " + db.storage_database + " OWNER TO " + db.user);
    return db;
}

// ---- The service ----

PowerSyncService::PowerSyncService(const PowerSyncTools& tools, const LocalPostgres& server,
                                   const PowerSyncDatabase& database, const fs::path& dir)
    : log_path_(dir / "powersync.log"),
      port_(free_loopback_port()),
      jwt_key_(run_script(source_path("scripts/powersync-token") + " --new-key")),
      api_token_(random_uuid()),
      started_(std::chrono::steady_clock::now()),
      child_(service_argv(tools), log_path_.string(),
             service_env(server, database, port_, jwt_key_, api_token_)) {}

void PowerSyncService::wait_ready(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const std::string text = log();
        if (text.find("Service started") != std::string::npos &&
            text.find("Activated new replication stream") != std::string::npos)
            break;
        if (!child_.running())
            throw std::runtime_error("the PowerSync service exited (" +
                                     std::to_string(child_.exit_status().value_or(-1)) +
                                     "); its log:\n" + tail(text));
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("the PowerSync service was not ready within " +
                                     std::to_string(timeout.count()) + " s; its log:\n" +
                                     tail(text));
        std::this_thread::sleep_for(20ms);
    }
    ready_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

std::string PowerSyncService::client_token() const {
    return run_script(source_path("scripts/powersync-token") + " --key=" + shell_quote(jwt_key_));
}

std::string PowerSyncService::log() const {
    return read_text(log_path_);
}

// ---- The endpoint ----

EndpointProcess::EndpointProcess(LocalPostgres& server, const std::string& database,
                                 const std::string& hs256_key, const std::string& powersync_url,
                                 const fs::path& dir, const std::string& extra)
    : log_path_(dir / "endpoint.log"),
      config_((dir / "endpoint.toml").string()),
      port_(free_loopback_port()) {
    server.exec(
        "DO $$ BEGIN CREATE ROLE lestash_endpoint_test LOGIN PASSWORD 'endpoint-pw' IN ROLE "
        "lestash_endpoint; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    fs::create_directories(dir);
    std::ofstream(dir / "hs256.key") << hs256_key << "\n";
    std::ofstream(config_) << "[endpoint]\nlisten = \"127.0.0.1\"\nport = " << port_
                           << "\npublic_url = \"" << url() << "\"\npowersync_url = \""
                           << powersync_url << "\"\n[postgres]\nconninfo = \""
                           << server.conninfo_as("lestash_endpoint_test", "endpoint-pw", database)
                           << "\"\n[tokens]\nhs256_key_file = \"" << (dir / "hs256.key").string()
                           << "\"\n"
                           << extra;
    child_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{LESTASH_ENDPOINT_PATH, "--config", config_, "serve"},
        log_path_.string());
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (log().find("listening on") == std::string::npos) {
        if (!child_->running() || std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("lestash-endpoint did not start; its log:\n" + tail(log()));
        std::this_thread::sleep_for(20ms);
    }
}

std::string EndpointProcess::pairing_code(const std::string& name) const {
    const std::string out = run_script(std::string(LESTASH_ENDPOINT_PATH) + " --config " +
                                       shell_quote(config_) + " pair --name " + shell_quote(name));
    std::smatch m;
    if (!std::regex_search(out, m, std::regex(R"(code:\s+([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}))")))
        throw std::runtime_error("lestash-endpoint pair printed no code:\n" + out);
    return m[1].str();
}

std::string EndpointProcess::log() const {
    return read_text(log_path_);
}

std::string http_post(const std::string& url, const std::string& body, const std::string& bearer) {
    static const std::regex parts(R"(^http://([^/:]+):(\d+)(/.*)$)");
    std::smatch m;
    if (!std::regex_match(url, m, parts))
        throw std::runtime_error("not an http://host:port/path URL: " + url);
    httplib::Client client(m[1].str(), std::stoi(m[2].str()));
    client.set_read_timeout(120, 0);
    httplib::Headers headers;
    if (!bearer.empty())
        headers.emplace("Authorization", "Bearer " + bearer);
    const auto res = client.Post(m[3].str().c_str(), headers, body, "application/json");
    if (!res)
        throw std::runtime_error("POST " + url + ": " + httplib::to_string(res.error()));
    return res->body;
}

// ---- The phone ----

Phone::Phone(const PowerSyncTools& tools, const PowerSyncService& service,
             const std::string& admin_conninfo, const fs::path& dir,
             const std::optional<PhoneUploads>& uploads)
    : log_path_(dir / "phone.log"),
      child_(phone_argv(tools, service, admin_conninfo, dir, uploads), log_path_.string()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = (dir / "agent.sock").string();
    if (path.size() >= sizeof addr.sun_path)
        throw std::runtime_error("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        socket_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (::connect(socket_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
            return;
        ::close(socket_);
        socket_ = -1;
        if (!child_.running() || std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("the phone agent did not start; its log:\n" + tail(log()));
        std::this_thread::sleep_for(20ms);
    }
}

Phone::~Phone() {
    if (socket_ >= 0)
        ::close(socket_);
}

json Phone::call(json request, std::chrono::milliseconds timeout) {
    const int id = next_id_++;
    request["id"] = id;
    const std::string line = request.dump() + "\n";
    for (std::size_t sent = 0; sent < line.size();) {
        const ssize_t n = ::send(socket_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0)
            throw std::runtime_error("the phone agent went away; its log:\n" + tail(log()));
        sent += static_cast<std::size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            json answer = json::parse(buffer_.substr(0, nl));
            buffer_.erase(0, nl + 1);
            if (answer["id"] != id)
                continue;  // the late answer of a request that timed out
            if (!answer["ok"].get<bool>())
                throw std::runtime_error("phone: " + request["op"].get<std::string>() +
                                         " failed: " + answer["error"].get<std::string>());
            return answer;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{socket_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
            throw std::runtime_error("phone: no answer to " + request["op"].get<std::string>() +
                                     " within " + std::to_string(timeout.count()) +
                                     " ms; its log:\n" + tail(log()));
        char chunk[65536];
        const ssize_t n = ::recv(socket_, chunk, sizeof chunk, 0);
        if (n <= 0 && errno != EINTR)
            throw std::runtime_error("the phone agent went away; its log:\n" + tail(log()));
        if (n > 0)
            buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

double Phone::connect() {
    return call({{"op", "connect"}}, 120s)["ms"].get<double>();
}

json Phone::dump(const std::vector<SyncedTable>& tables) {
    json request = {{"op", "dump"}, {"tables", json::object()}};
    for (const auto& t : tables) request["tables"][t.table] = t.columns;
    return call(request, 120s)["tables"];
}

double Phone::wait_until(const std::string& sql, const json& params,
                         std::chrono::milliseconds timeout) {
    return call({{"op", "wait"}, {"sql", sql}, {"params", params}, {"timeout_ms", timeout.count()}},
                timeout + 10s)["ms"]
        .get<double>();
}

std::string Phone::log() const {
    return read_text(log_path_);
}

// ---- Postgres as the phone must hold it ----

json postgres_as_the_phone_sees_it(const std::string& conninfo,
                                   const std::vector<SyncedTable>& tables) {
    pqxx::connection conn(conninfo);
    pqxx::read_transaction txn(conn);  // one snapshot for every table
    json out = json::object();
    for (const auto& t : tables) {
        std::string select;
        for (const auto& column : t.columns) {
            const auto type = txn.exec_params1(
                                     "SELECT udt_name FROM information_schema.columns WHERE "
                                     "table_schema = 'lestash' AND table_name = $1 AND "
                                     "column_name = $2",
                                     t.table, column)[0]
                                  .as<std::string>();
            const std::string c = txn.quote_name(column);
            std::string value;
            if (type == "bool")
                value = "CASE WHEN " + c + " THEN '1' ELSE '0' END";
            else if (type == "int2" || type == "int4" || type == "int8" || type == "text" ||
                     type == "uuid" || type == "varchar" || type == "jsonb")
                value = c + "::text";
            else
                throw std::runtime_error("no phone mapping for " + t.table + "." + column +
                                         " of type " + type);
            const bool integer = type == "bool" || type.rfind("int", 0) == 0;
            if (!select.empty())
                select += ", ";
            select += "CASE WHEN " + c + " IS NULL THEN 'null' ELSE '" +
                      (integer ? "integer" : "text") + "' END, " + value;
        }
        json rows = json::array();
        for (const auto& r :
             txn.exec("SELECT " + select + " FROM lestash." + txn.quote_name(t.table) +
                      " ORDER BY id::text COLLATE \"C\"")) {
            json row = json::array();
            for (std::size_t i = 0; i < t.columns.size(); ++i)
                row.push_back({r[static_cast<int>(2 * i)].as<std::string>(),
                               r[static_cast<int>(2 * i + 1)].is_null()
                                   ? json(nullptr)
                                   : json(r[static_cast<int>(2 * i + 1)].as<std::string>())});
            rows.push_back(std::move(row));
        }
        out[t.table] = std::move(rows);
    }
    return out;
}

std::string dump_differences(const json& expected, const json& actual) {
    std::ostringstream out;
    int shown = 0;
    for (const auto& [table, rows] : expected.items()) {
        if (!actual.contains(table)) {
            out << table << ": missing on the phone\n";
            continue;
        }
        const auto& got = actual[table];
        if (rows.size() != got.size())
            out << table << ": " << rows.size() << " rows in Postgres, " << got.size()
                << " on the phone\n";
        for (std::size_t i = 0; i < std::min(rows.size(), got.size()) && shown < 5; ++i)
            if (rows[i] != got[i]) {
                out << table << " row " << i << ":\n  Postgres " << rows[i].dump().substr(0, 400)
                    << "\n  phone    " << got[i].dump().substr(0, 400) << "\n";
                ++shown;
            }
    }
    return out.str();
}

}  // namespace lestash::test
