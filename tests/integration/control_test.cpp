// The control socket and the lestash-sync CLI against a real daemon, a real
// socket and the throwaway Postgres. Deadlines are liveness bounds only.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "fault_proxy.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/control/control_client.hpp"
#include "lestash_sync/control/rpc.hpp"
#include "skip.hpp"
#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// A daemon on `name`.db with its socket at `name`.sock and a config file
// giving a short request timeout (the bad-input tests wait for it).
struct RunningDaemon {
    RunningDaemon(const TempDir& dir, const std::string& name, const std::string& conninfo)
        : db(dir.file(name + ".db")), socket(dir.file(name + "-run/syncd.sock")) {
        const auto config = dir.file(name + ".toml");
        std::ofstream(config) << "[control]\nrequest_timeout_seconds = 2\n";
        process = std::make_unique<DaemonProcess>(
            std::vector<std::string>{"--config", config, "--db", db, "--postgres", conninfo,
                                     "--socket", socket, "--replica", name, "--log-level", "debug"},
            dir.file(name + ".log"));
        INFO(process->log());
        REQUIRE(eventually([&] {
            try {
                ControlClient c(socket);
                return c.call("status")["state"] == "idle";
            } catch (const std::exception&) {
                return false;
            }
        }));
    }
    json call(const std::string& method, const json& params = json::object()) {
        ControlClient c(socket);
        return c.call(method, params);
    }
    std::int64_t count(const std::string& sql) const {
        sqlite::Connection c(db, SQLITE_OPEN_READONLY);
        c.exec("PRAGMA busy_timeout = 5000");
        return c.query_int(sql);
    }
    std::string db, socket;
    std::unique_ptr<DaemonProcess> process;
};

// A raw client: bytes in, lines out.
class RawClient {
  public:
    explicit RawClient(const std::string& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~RawClient() { ::close(fd_); }
    bool connected() const { return connected_; }
    // False when the daemon closed the connection before all was sent.
    bool send(const std::string& bytes) {
        for (std::size_t sent = 0; sent < bytes.size();) {
            const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }
    // The next line, or nullopt on end of stream or after `timeout`.
    std::optional<json> line(std::chrono::milliseconds timeout = 10s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
                const auto text = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return json::parse(text);
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                end - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return std::nullopt;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
                continue;
            char chunk[4096];
            const auto n = ::read(fd_, chunk, sizeof chunk);
            if (n <= 0)
                return std::nullopt;
            buf_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    // True once the daemon has closed its end.
    bool closed_by_peer(std::chrono::milliseconds timeout = 10s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0)
                continue;
            char chunk[4096];
            const auto n = ::read(fd_, chunk, sizeof chunk);
            if (n <= 0)
                return true;
        }
        return false;
    }

  private:
    int fd_ = -1;
    bool connected_ = false;
    std::string buf_;
};

int error_code(const std::optional<json>& response) {
    return response && response->contains("error") ? (*response)["error"]["code"].get<int>() : 0;
}

std::string request(const std::string& method, const json& params = json::object(), int id = 1) {
    return rpc::frame({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
}

CommandResult cli(const RunningDaemon& d, const std::string& args) {
    return run_command(std::string(LESTASH_CLI_PATH) + " --socket '" + d.socket + "' " + args);
}

void shell(const std::string& db_path, const std::string& sql) {
    const auto r = run_command("sqlite3 -cmd '.timeout 5000' '" + db_path + "' \"" + sql + "\"");
    INFO(r.output);
    REQUIRE(r.status == 0);
}

// Whatever the clients did, a write on A still reaches B; then both stop.
void syncing_goes_on(RunningDaemon& a, RunningDaemon& b) {
    shell(a.db, "INSERT INTO tags (name) VALUES ('still-syncing')");
    REQUIRE(eventually(
        [&] { return b.count("SELECT count(*) FROM tags WHERE name = 'still-syncing'") == 1; }));
    CHECK(a.process->running());
    CHECK(a.process->stop(SIGTERM) == 0);
    CHECK(b.process->stop(SIGTERM) == 0);
}

}  // namespace

TEST_CASE("every method answers over the socket, and search on B finds what A wrote", "[control]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo), b(dir, "b", up.daemon_conninfo);
    INFO("a.log:\n" << a.process->log());

    const auto hello = a.call("hello", {{"client", "test"}});
    CHECK(hello["protocol"] == rpc::kProtocolVersion);
    CHECK(hello["methods"].size() >= 14);
    CHECK(a.call("version")["daemon"] == "lestash-syncd");

    const auto status = a.call("status");
    CHECK(status["state"] == "idle");
    CHECK(status["replica"]["name"] == "a");
    CHECK(status["database"] == a.db);
    CHECK(status["postgres"]["connected"] == true);
    int newest_migration = 0;  // every one is applied: the version is the newest file's
    for (const auto& f : std::filesystem::directory_iterator(std::string(LESTASH_SOURCE_DIR) +
                                                             "/migrations/postgres"))
        newest_migration = std::max(newest_migration, std::stoi(f.path().filename().string()));
    CHECK(status["postgres"]["schema_version"] == newest_migration);
    CHECK(status["postgres"]["target"].get<std::string>().find("daemon-pw") == std::string::npos);

    // Written on A by the app, found on B by search, shown with tags, with history.
    std::int64_t id = 0;
    {
        AppWriter app(a.db);
        ItemFields f;
        f.source_id = "ctl-1";
        f.title = "Zebra crossing";
        f.content = "a note about the okapi and the zebra";
        id = app.upsert_item(f);
        app.add_tag(id, "animals");
        app.update_content(id, "a note about the okapi, the zebra and the quagga");
    }
    const auto waited = a.call("sync.now", {{"wait", true}, {"timeout_ms", 60000}});
    CHECK(waited["caught_up"] == true);
    CHECK(waited["status"]["outbox_depth"] == 0);
    REQUIRE(eventually([&] {
        return b.count("SELECT count(*) FROM item_tags") == 1 &&
               b.count("SELECT count(*) FROM item_history") == 1;
    }));
    const auto found = b.call("items.search", {{"query", "okapi"}, {"highlight", {"<", ">"}}});
    REQUIRE(found["hits"].size() == 1);
    CHECK(found["total"] == 1);
    const auto hit = found["hits"][0];
    CHECK(hit["title"] == "Zebra crossing");
    CHECK(hit["snippet"].get<std::string>().find("<okapi>") != std::string::npos);
    CHECK(hit["uuid"].get<std::string>().size() == 36);
    CHECK(b.call("items.search", {{"query", "okapi"}, {"source", "bookmark"}})["hits"].empty());
    for (const json& key : {json(hit["id"]), json(hit["uuid"])}) {
        const auto item = b.call("items.get", {{"id", key}});
        CHECK(item["title"] == "Zebra crossing");
        CHECK(item["tags"] == json{"animals"});
        CHECK(item["history_count"] == 1);
    }
    const auto hist = b.call("items.history", {{"id", hit["uuid"]}});
    REQUIRE(hist["history"].size() == 1);
    CHECK(hist["history"][0]["content_old"] == "a note about the okapi and the zebra");

    // Pause holds local changes; resume sends them.
    CHECK(a.call("sync.pause")["paused"] == true);
    REQUIRE(eventually([&] { return a.call("status")["state"] == "paused"; }));
    shell(a.db, "INSERT INTO tags (name) VALUES ('while-paused')");
    std::this_thread::sleep_for(500ms);
    CHECK(a.call("status")["outbox_depth"] == 1);
    try {
        a.call("sync.now");
        FAIL("sync.now while paused must fail");
    } catch (const RpcError& e) {
        CHECK(e.code == rpc::paused);
    }
    a.call("sync.resume");
    REQUIRE(eventually(
        [&] { return b.count("SELECT count(*) FROM tags WHERE name = 'while-paused'") == 1; }));

    // events.subscribe: a push on A arrives as an event on the same connection.
    {
        ControlClient follower(a.socket);
        const auto sub = follower.call("events.subscribe");
        CHECK(sub["subscribed"] == true);
        CHECK_FALSE(sub["recent"].empty());
        shell(a.db, "INSERT INTO tags (name) VALUES ('evented')");
        bool pushed = false;
        std::thread stop([&] { std::this_thread::sleep_for(30s); });
        stop.detach();
        follower.follow([&](const json& n) {
            if (n["method"] == "event" && n["params"]["type"] == "pushed")
                pushed = true;
            return !pushed;
        });
        CHECK(pushed);
    }

    // metrics: Prometheus text with the counters.
    // The pushed event comes from inside the cycle; the counters settle when it ends.
    std::string metrics;
    CHECK(eventually([&] {
        metrics = a.call("metrics")["text"].get<std::string>();
        return metrics.find("lestash_sync_outbox_depth 0") != std::string::npos &&
               metrics.find("lestash_sync_state{state=\"idle\"} 1") != std::string::npos;
    }));
    CHECK(metrics.find("# TYPE lestash_sync_pushed_changes_total counter") != std::string::npos);

    // verify, with progress notifications, once B has pulled A's last write.
    REQUIRE(eventually(
        [&] { return b.count("SELECT count(*) FROM tags WHERE name = 'evented'") == 1; }));
    int progress = 0;
    ControlClient v(b.socket);
    const auto report = v.call("verify", {{"repair", false}}, [&](const json& n) {
        if (n["method"] == "verify.progress")
            ++progress;
    });
    CHECK(report["matches"] == true);
    CHECK(progress >= 6);

    CHECK(a.process->stop(SIGTERM) == 0);
    CHECK(b.process->stop(SIGTERM) == 0);
}

TEST_CASE("conflicts are listed with their context and resolved either way",
          "[control][conflicts]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo);
    INFO(a.process->log());
    TestReplica c(dir.file("c.db"), up.daemon_conninfo);
    shell(a.db,
          "INSERT INTO items (source_type, source_id, title, content) VALUES ('note', 'x', "
          "'Original', 'body')");
    a.call("sync.now", {{"wait", true}});
    c.sync();
    // Both edit the title from the same base: A's daemon is paused so C's edit lands first.
    a.call("sync.pause");
    REQUIRE(eventually([&] { return a.call("status")["state"] == "paused"; }));
    shell(a.db, "UPDATE items SET title = 'Title from A' WHERE source_id = 'x'");
    c.replica().db().exec("UPDATE items SET title = 'Title from C' WHERE source_id = 'x'");
    c.sync();
    a.call("sync.resume");
    a.call("sync.now", {{"wait", true}});

    auto open = a.call("conflicts.list")["conflicts"];
    REQUIRE(open.size() == 1);
    CHECK(open[0]["table"] == "items");
    CHECK(open[0]["column"] == "title");
    CHECK(open[0]["winner"]["value"] == "Title from A");
    CHECK(open[0]["loser"]["value"] == "Title from C");
    CHECK(open[0]["title"] == "Title from A");
    CHECK(open[0]["local_id"].is_number_integer());

    const auto resolved = a.call("conflicts.resolve", {{"id", open[0]["id"]}, {"keep", "loser"}});
    CHECK(resolved["resolution"] == "restored loser");
    REQUIRE(eventually(
        [&] { return a.count("SELECT count(*) FROM items WHERE title = 'Title from C'") == 1; }));
    CHECK(a.call("conflicts.list")["conflicts"].empty());
    CHECK(a.call("conflicts.list", {{"all", true}})["conflicts"].size() == 1);
    try {
        a.call("conflicts.resolve", {{"id", open[0]["id"]}, {"keep", "winner"}});
        FAIL("resolving twice must fail");
    } catch (const RpcError& e) {
        CHECK(std::string(e.what()).find("already resolved") != std::string::npos);
    }
    c.sync();
    CHECK(c.replica().db().query_text("SELECT title FROM items WHERE source_id = 'x'") ==
          "Title from C");
    CHECK(a.process->stop(SIGTERM) == 0);
}

// Issue 14: conflicts.list reached Postgres without the error translation,
// so a dropped connection came back as -32603 ("a bug") with nothing logged.
TEST_CASE("a Postgres connection dropped during conflicts.list is -32000 and logged, then recovers",
          "[control][conflicts][network]") {
    TempDir dir;
    const auto up = fresh_upstream();
    FaultProxy proxy("127.0.0.1", static_cast<std::uint16_t>(shared_postgres().port()), 14);
    RunningDaemon a(dir, "a", up.daemon_conninfo + " " + proxy.host_port_conninfo());
    INFO(a.process->log());
    shared_postgres().exec(
        "INSERT INTO lestash.conflicts (tbl, row_id, column_name, winner_value, loser_value) "
        "VALUES ('items', '00000000-0000-4000-8000-000000000014', 'title', '\"A\"', '\"C\"')",
        up.name);
    REQUIRE(a.call("conflicts.list")["conflicts"].size() == 1);

    auto list_is_unavailable = [&](const std::string& why) {
        try {
            a.call("conflicts.list");
            FAIL("conflicts.list must fail while its connection is gone");
        } catch (const RpcError& e) {
            INFO(e.what());
            CHECK(e.code == rpc::unavailable);
            CHECK(std::string(e.what()).find("listing the conflicts at") != std::string::npos);
            CHECK(std::string(e.what()).find(why) != std::string::npos);
        }
        CHECK(eventually([&] {
            return a.process->log().find("control conflicts.list: listing the conflicts at") !=
                   std::string::npos;
        }));
        // The worker notices at its next cycle and reconnects.
        a.call("sync.now", {{"wait", true}});
        CHECK(a.call("conflicts.list")["conflicts"].size() == 1);
    };

    // Cut by the network right after Postgres received the COMMIT, before
    // its answer came back: the daemon is idle, so that COMMIT is the list's.
    proxy.cut_after_commits(1);
    list_is_unavailable("commit outcome unknown");
    CHECK(proxy.stats().cuts_commit_in_doubt == 1);

    // Ended by the server while idle: found when the list begins.
    shared_postgres().exec(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '" +
        up.name + "' AND usename = 'lestash_daemon_test' AND query <> 'LISTEN lestash_changes'");
    list_is_unavailable("connection to Postgres lost");
    CHECK(a.process->stop(SIGTERM) == 0);
}

TEST_CASE("bad input gets the documented error or is cut off, and syncing goes on",
          "[control][robustness]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo), b(dir, "b", up.daemon_conninfo);
    INFO("a.log:\n" << a.process->log());

    SECTION("malformed JSON, non-JSON-RPC, unknown method, wrong types, invalid UTF-8") {
        RawClient c(a.socket);
        REQUIRE(c.connected());
        c.send("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \n");
        auto r = c.line();
        CHECK(error_code(r) == rpc::parse_error);
        CHECK((*r)["id"].is_null());
        c.send("{\"hello\": \"world\"}\n");
        CHECK(error_code(c.line()) == rpc::invalid_request);
        c.send("[1, 2]\n");
        CHECK(error_code(c.line()) == rpc::invalid_request);
        c.send(request("no.such.method", json::object(), 7));
        r = c.line();
        CHECK(error_code(r) == rpc::method_not_found);
        CHECK((*r)["id"] == 7);
        c.send(request("items.search", {{"query", 5}}));
        CHECK(error_code(c.line()) == rpc::invalid_params);
        c.send(request("items.search", {{"query", "x"}, {"limit", "ten"}}));
        CHECK(error_code(c.line()) == rpc::invalid_params);
        c.send(request("items.search", {{"query", "x"}, {"limit", 100000}}));
        CHECK(error_code(c.line()) == rpc::invalid_params);
        c.send(request("status", {{"verbose", true}}));
        CHECK(error_code(c.line()) == rpc::invalid_params);
        c.send(request("items.get", json::object()));
        CHECK(error_code(c.line()) == rpc::invalid_params);
        c.send(request("items.get", {{"id", "999999"}}));
        CHECK(error_code(c.line()) == rpc::not_found);
        c.send(request("items.search", {{"query", "zebra AND ("}}));
        r = c.line();
        CHECK(error_code(r) == rpc::bad_query);
        CHECK((*r)["error"]["message"].get<std::string>().find("fts5") != std::string::npos);
        c.send(
            "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"items.search\", \"params\": "
            "{\"query\": \"caf\xc3\x28\"}}\n");
        CHECK(error_code(c.line()) == rpc::parse_error);
        // A notification (no id) gets no answer; the next request does.
        c.send("{\"jsonrpc\": \"2.0\", \"method\": \"status\"}\n");
        c.send(request("hello", json::object(), 9));
        r = c.line();
        REQUIRE(r);
        CHECK((*r)["id"] == 9);
    }
    SECTION("a 10 MiB line is refused and the connection closed") {
        RawClient c(a.socket);
        const std::string huge = "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"" +
                                 std::string(10 << 20, 'x') + "\"}\n";
        c.send(huge);  // may fail part-way once the daemon hangs up
        const auto r = c.line();
        CHECK(error_code(r) == rpc::too_large);
        CHECK(c.closed_by_peer());
    }
    SECTION("a client that sends half a request and stalls is cut off") {
        RawClient c(a.socket);
        c.send("{\"jsonrpc\": \"2.0\", \"id\": 1, \"meth");
        const auto r = c.line(20s);
        CHECK(error_code(r) == rpc::invalid_request);
        CHECK(c.closed_by_peer());
    }
    SECTION("a client that disconnects mid-stream harms nothing") {
        {
            ControlClient f(a.socket);
            f.call("events.subscribe");
            RawClient half(a.socket);
            half.send(request("verify"));  // and goes away before the answer
        }
        CHECK(a.call("status")["state"] != "error");
    }
    SECTION("100 clients at once are all served") {
        std::vector<std::unique_ptr<RawClient>> clients;
        for (int i = 0; i < 100; ++i) {
            clients.push_back(std::make_unique<RawClient>(a.socket));
            REQUIRE(clients.back()->connected());
        }
        for (int i = 0; i < 100; ++i)
            clients[static_cast<std::size_t>(i)]->send(request("status", json::object(), i));
        int answered = 0;
        for (int i = 0; i < 100; ++i) {
            const auto r = clients[static_cast<std::size_t>(i)]->line();
            answered += r && (*r)["id"] == i && (*r)["result"]["state"].is_string();
        }
        CHECK(answered == 100);
    }
    syncing_goes_on(a, b);
}

// Root can switch to another uid; others cannot, and a pass that checked
// nothing must not read as one (CTest reports the test skipped).
TEST_CASE("a client running as another user is refused, and syncing goes on",
          "[control][robustness][root]") {
    if (::geteuid() != 0) {
        skip_test(
            "not root, so no uid to switch to for testing SO_PEERCRED (the 0700 directory keeps "
            "others out)");
        return;
    }
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo), b(dir, "b", up.daemon_conninfo);
    INFO("a.log:\n" << a.process->log());
    // Open the file-system door so only the daemon's own check stands.
    ::chmod(dir.path().c_str(), 0711);
    ::chmod(std::filesystem::path(a.socket).parent_path().c_str(), 0777);
    ::chmod(a.socket.c_str(), 0777);
    const pid_t child = ::fork();
    if (child == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0)
            ::_exit(10);
        RawClient c(a.socket);
        if (!c.connected())
            ::_exit(11);
        c.send(request("status"));
        const auto r = c.line();
        ::_exit(error_code(r) == rpc::permission_denied && c.closed_by_peer() ? 0 : 12);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    ::chmod(std::filesystem::path(a.socket).parent_path().c_str(), 0700);
    syncing_goes_on(a, b);
}

TEST_CASE("the socket is private: directory 0700, socket 0600, removed at exit", "[control]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo);
    struct stat st {};
    REQUIRE(::stat(std::filesystem::path(a.socket).parent_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    REQUIRE(::stat(a.socket.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(a.process->stop(SIGTERM) == 0);
    CHECK_FALSE(std::filesystem::exists(a.socket));
}

TEST_CASE("the CLI: every subcommand, readable and --json, with meaningful exit codes",
          "[control][cli]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo);
    INFO(a.process->log());
    shell(a.db,
          "INSERT INTO items (source_type, source_id, title, content) VALUES ('note', 'cli', "
          "'Capybara notes', 'the capybara is calm')");
    shell(a.db, "UPDATE items SET content = 'the capybara is very calm' WHERE source_id = 'cli'");

    auto ok = [&](const std::string& args) {
        const auto r = cli(a, args);
        INFO("lestash-sync " << args << "\n" << r.output);
        CHECK(r.status == 0);
        return r.output;
    };
    auto ok_json = [&](const std::string& args) { return json::parse(ok("--json " + args)); };

    CHECK(ok("now --wait --timeout 60").find("caught up") != std::string::npos);
    CHECK(ok_json("now --wait")["caught_up"] == true);
    const auto human = ok("status");
    CHECK(human.find("idle") != std::string::npos);
    CHECK(human.find("replica") != std::string::npos);
    CHECK(human.find("connected") != std::string::npos);
    CHECK(ok_json("status")["replica"]["name"] == "a");
    const auto found = ok("search capybara");
    INFO(found);
    CHECK(found.find("[Capybara] notes") != std::string::npos);
    const auto hits = ok_json("search capybara --limit 5");
    REQUIRE(hits["hits"].size() == 1);
    const auto id = std::to_string(hits["hits"][0]["id"].get<std::int64_t>());
    CHECK(ok("show " + id).find("Capybara notes") != std::string::npos);
    CHECK(ok_json("show " + id)["content"] == "the capybara is very calm");
    CHECK(ok("history " + id).find("the capybara is calm") != std::string::npos);
    CHECK(ok_json("history " + id)["history"].size() == 1);
    CHECK(ok("conflicts").find("no open conflicts") != std::string::npos);
    CHECK(ok_json("conflicts --all")["conflicts"].empty());
    CHECK(ok("verify").find("same") != std::string::npos);
    CHECK(ok_json("verify")["matches"] == true);
    CHECK(ok("metrics").find("lestash_sync_cycles_total") != std::string::npos);
    CHECK(ok("log").find("pushed") != std::string::npos);
    CHECK(ok("pause").find("paused") != std::string::npos);
    CHECK(ok_json("status")["state"] == "paused");
    CHECK(ok("resume").find("resumed") != std::string::npos);

    // Errors: the message on stderr, a distinct exit code.
    auto bad = cli(a, "search 'capybara AND ('");
    CHECK(bad.status == 1);
    CHECK(bad.output.find("invalid search query") != std::string::npos);
    bad = cli(a, "show 424242");
    CHECK(bad.status == 1);
    CHECK(bad.output.find("no item 424242") != std::string::npos);
    bad = run_command(std::string(LESTASH_CLI_PATH) + " --socket " + dir.file("nobody-here.sock") +
                      " status");
    CHECK(bad.status == 69);
    CHECK(bad.output.find("systemctl --user start lestash-syncd") != std::string::npos);
    CHECK(run_command(std::string(LESTASH_CLI_PATH) + " search").status == 2);  // usage
    for (const auto* sub : {"status", "now", "pause", "resume", "search", "show", "history",
                            "conflicts", "verify", "log", "metrics"}) {
        const auto help = run_command(std::string(LESTASH_CLI_PATH) + " " + sub + " --help");
        INFO(sub);
        CHECK(help.status == 0);
        CHECK(help.output.find("Usage") != std::string::npos);
    }
    CHECK(a.process->stop(SIGTERM) == 0);
}

TEST_CASE("the CLI takes its global options after the subcommand too, as people type them",
          "[control][cli]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo);
    INFO(a.process->log());
    shell(a.db,
          "INSERT INTO items (source_type, source_id, title, content) VALUES ('note', 'late', "
          "'Okapi notes', 'the okapi is shy')");
    auto run = [&](const std::string& args) {
        const auto r = run_command(std::string(LESTASH_CLI_PATH) + " " + args);
        INFO("lestash-sync " << args << "\n" << r.output);
        CHECK(r.status == 0);
        return r.output;
    };
    const std::string socket = "--socket '" + a.socket + "'";
    CHECK(json::parse(run("status --json " + socket))["replica"]["name"] == "a");
    CHECK(json::parse(run("now " + socket + " --wait --json"))["caught_up"] == true);
    const auto hits = json::parse(run("search okapi --json --limit 5 " + socket));
    CHECK(hits["hits"].size() == 1);
    CHECK(json::parse(run("conflicts --all " + socket + " --json"))["conflicts"].empty());
    // A nested subcommand, the global options last: --json shapes even the error.
    const auto resolve = run_command(std::string(LESTASH_CLI_PATH) +
                                     " conflicts resolve 4242 --keep winner " + socket + " --json");
    INFO(resolve.output);
    CHECK(resolve.status == 1);
    CHECK(resolve.output.find("\"error\"") != std::string::npos);
    CHECK(a.process->stop(SIGTERM) == 0);
}

TEST_CASE("both programs' --version is the version the daemon reports over the socket",
          "[control][cli]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo);
    const std::string version = a.call("hello")["version"];
    CHECK(a.call("status")["version"] == version);
    for (const std::string program : {LESTASH_SYNCD_PATH, LESTASH_CLI_PATH}) {
        const auto r = run_command(program + " --version");
        const auto name = std::filesystem::path(program).filename().string();
        CHECK(r.status == 0);
        CHECK(r.output == name + " " + version + "\n");
        // And after a subcommand, like any global option.
        CHECK(run_command(program + " verify --version").output == r.output);
    }
    CHECK(a.process->stop(SIGTERM) == 0);
}

TEST_CASE("the CLI finds the socket as the daemon does: --socket, else sync.toml, else the default",
          "[control][cli]") {
    TempDir dir;
    const auto up = fresh_upstream();
    RunningDaemon a(dir, "a", up.daemon_conninfo);
    const auto config_home = dir.file("config");
    std::filesystem::create_directories(config_home + "/lestash");
    std::ofstream(config_home + "/lestash/sync.toml")
        << "[control]\nsocket = \"" << a.socket << "\"\n";
    // Nothing else points at the daemon's socket: the default is elsewhere.
    const std::string env = "env XDG_CONFIG_HOME='" + config_home + "' XDG_RUNTIME_DIR='" +
                            dir.file("elsewhere") + "' " + LESTASH_CLI_PATH;
    auto r = run_command(env + " status --json");
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(json::parse(r.output)["replica"]["name"] == "a");
    // --config names the file; --socket wins over both.
    const auto other = dir.file("other.toml");
    std::ofstream(other) << "[control]\nsocket = \"" << a.socket << "\"\n";
    r = run_command(std::string("env XDG_RUNTIME_DIR='") + dir.file("elsewhere") + "' " +
                    LESTASH_CLI_PATH + " status --config '" + other + "'");
    CHECK(r.status == 0);
    r = run_command(env + " status --socket '" + dir.file("nobody.sock") + "'");
    CHECK(r.status == 69);
    CHECK(r.output.find(dir.file("nobody.sock")) != std::string::npos);
    // Without a file, the default path, named in the message.
    r = run_command("env XDG_CONFIG_HOME='" + dir.file("none") + "' XDG_RUNTIME_DIR='" +
                    dir.file("elsewhere") + "' " + LESTASH_CLI_PATH + " status");
    CHECK(r.status == 69);
    CHECK(r.output.find(dir.file("elsewhere") + "/lestash/syncd.sock") != std::string::npos);
    // A file the daemon would refuse is refused here too, with its line.
    std::ofstream(config_home + "/lestash/sync.toml") << "[control]\nsocket = \"relative.sock\"\n";
    r = run_command(env + " status");
    CHECK(r.status == 2);
    CHECK(r.output.find("sync.toml:2") != std::string::npos);
    CHECK(a.process->stop(SIGTERM) == 0);
}

TEST_CASE("sync.now with wait on a daemon without Postgres answers unavailable at once",
          "[control][cli]") {
    TempDir dir;
    const auto socket = dir.file("run/syncd.sock");
    DaemonProcess d({"--db", dir.file("c.db"), "--socket", socket}, dir.file("c.log"),
                    {"XDG_CONFIG_HOME=" + dir.file("config")});
    INFO(d.log());
    REQUIRE(eventually([&] {
        try {
            return ControlClient(socket).call("status")["state"] == "offline";
        } catch (const std::exception&) {
            return false;
        }
    }));
    // A long timeout: the answer must not wait for it (-32003 would).
    try {
        ControlClient(socket).call("sync.now", {{"wait", true}, {"timeout_ms", 600000}});
        FAIL("sync.now with wait succeeded without Postgres");
    } catch (const RpcError& e) {
        CHECK(e.code == rpc::unavailable);
        CHECK_THAT(e.what(), Catch::Matchers::Contains("no Postgres configured"));
    }
    // Without wait it stays a request; the CLI says why --wait cannot work.
    CHECK(ControlClient(socket).call("sync.now")["requested"] == true);
    const auto r = run_command(std::string(LESTASH_CLI_PATH) + " now --wait --socket '" + socket +
                               "' --timeout 600");
    CHECK(r.status == 1);
    CHECK(r.output.find("no Postgres configured") != std::string::npos);
    CHECK(d.stop(SIGTERM) == 0);
}

}  // namespace lestash::test
