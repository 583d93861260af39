// A desktop (a real lestash-syncd), the PowerSync service and phones on one
// private Postgres, timed from the outside (see phone_bench.hpp). The
// desktop is written as the Le Stash CLI writes (the tests' AppWriter); the
// phones are PowerSync's client core driven by tests/support/powersync_rig.
#include "phone_bench.hpp"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>
#include <thread>

#include "app_writer.hpp"
#include "bench_common.hpp"
#include "lestash_sync/common/child_process.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/endpoint/phone_upstream.hpp"
#include "lestash_sync/endpoint/tokens.hpp"
#include "lestash_sync/endpoint/upload_request.hpp"
#include "lestash_sync/upstream/local_postgres.hpp"
#include "lestash_sync/upstream/upstream.hpp"
#include "powersync_rig.hpp"

namespace lestash::bench {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using test::AppWriter;
using test::Phone;
using test::PowerSyncService;
using test::PowerSyncTools;

namespace {

constexpr int kPauseMinMs = 20, kPauseMaxMs = 120;
constexpr int kTags = 10;

std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// p50/p95/p99 (nearest rank) and max, as `lestash-bench daemon` reports them.
json latency_summary(std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) {
        const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(ms.size())));
        return ms[std::clamp<size_t>(rank, 1, ms.size()) - 1];
    };
    return {{"p50", at(0.50)}, {"p95", at(0.95)}, {"p99", at(0.99)}, {"max", ms.back()}};
}

// A lestash-syncd child: SIGTERM at the end, SIGKILL (ChildProcess) if it lingers.
class Desktop {
  public:
    Desktop(const fs::path& dir, const std::string& syncd, const std::string& conninfo)
        : db_(dir / "desktop" / "lestash.db") {
        fs::create_directories(db_.parent_path());
        const std::string config = (dir / "empty.toml").string();
        std::ofstream(config).flush();
        {
            // A new v11 database with the capture triggers, made by the daemon.
            ChildProcess once({syncd, "--config", config, "--db", db_.string(), "--once"},
                              (dir / "desktop-once.log").string());
            if (once.wait_exit(60s) != 0)
                throw std::runtime_error("lestash-syncd --once failed: " +
                                         read_text(dir / "desktop-once.log"));
        }
        log_ = dir / "desktop.log";
        daemon_ = std::make_unique<ChildProcess>(
            std::vector<std::string>{syncd, "--config", config, "--db", db_.string(), "--postgres",
                                     conninfo, "--socket", (dir / "desktop.sock").string(),
                                     "--replica", "desktop", "--log-level", "debug"},
            log_.string());
        const auto deadline = Clock::now() + 60s;
        while (read_text(log_).find("sync (start)") == std::string::npos) {
            if (!daemon_->running() || Clock::now() > deadline)
                throw std::runtime_error("lestash-syncd did not start: " + read_text(log_));
            std::this_thread::sleep_for(20ms);
        }
    }
    ~Desktop() {
        daemon_->signal(SIGTERM);
        daemon_->wait_exit(10s);
    }
    const fs::path& db() const { return db_; }

  private:
    fs::path db_, log_;
    std::unique_ptr<ChildProcess> daemon_;
};

// Everything one run sets up, torn down in reverse: phones and the service
// (killed by pid), the desktop, then Postgres.
struct Rig {
    Rig(const fs::path& dir, const PowerSyncTools& tools, const std::string& syncd)
        : dir(dir), tools(tools) {
        // Durable (fsync on), as a user's server is.
        postgres = std::make_unique<LocalPostgres>(LocalPostgresOptions{"", true, true});
        database = postgres->create_database("lestash");
        admin = postgres->conninfo(database);
        apply_migrations(admin);
        postgres->exec(
            "CREATE ROLE lestash_bench_daemon LOGIN PASSWORD 'bench-pw' IN ROLE lestash_sync");
        desktop = std::make_unique<Desktop>(
            dir, syncd, postgres->conninfo_as("lestash_bench_daemon", "bench-pw", database));
        service = std::make_unique<PowerSyncService>(
            tools, *postgres, test::prepare_powersync_database(*postgres, database), dir);
        service->wait_ready();
    }

    std::unique_ptr<Phone> new_phone(const std::string& name) {
        return std::make_unique<Phone>(tools, *service, admin, dir / name);
    }

    // A phone that writes through lestash-endpoint, paired.
    std::unique_ptr<Phone> writing_phone(const std::string& name) {
        if (!endpoint)
            endpoint = std::make_unique<test::EndpointProcess>(
                *postgres, database, service->jwt_key(), service->endpoint(), dir / "endpoint");
        auto phone = std::make_unique<Phone>(tools, *service, admin, dir / name,
                                             test::PhoneUploads{endpoint->url(), endpoint->url()});
        phone->call({{"op", "pair"}, {"code", endpoint->pairing_code(name)}});
        return phone;
    }

    fs::path dir;
    PowerSyncTools tools;
    std::unique_ptr<LocalPostgres> postgres;
    std::string database, admin;
    std::unique_ptr<Desktop> desktop;
    std::unique_ptr<PowerSyncService> service;
    std::unique_ptr<test::EndpointProcess> endpoint;
};

class Pauses {
  public:
    void sleep() { std::this_thread::sleep_for(std::chrono::milliseconds(pick_(rng_))); }

  private:
    std::mt19937 rng_{5};
    std::uniform_int_distribution<int> pick_{kPauseMinMs, kPauseMaxMs};
};

// One untimed warm-up write, then `writes` timed ones (ids PREFIX-0, ...),
// a random pause before each, the same pauses for every path.
std::vector<double> timed_writes(const std::string& prefix, int writes,
                                 const std::function<double(const std::string& id)>& timed) {
    timed(prefix + "-warmup");
    Pauses pauses;
    std::vector<double> ms;
    for (int i = 0; i < writes; ++i) {
        pauses.sleep();
        ms.push_back(timed(prefix + "-" + std::to_string(i)));
    }
    return ms;
}

const char* kVisible = "SELECT count(*) = 1 FROM items WHERE source_type = ? AND source_id = ?";

// Single notes written on the desktop as the CLI writes them (an upsert in
// its own transaction), each timed from the write until the phone shows it.
std::vector<double> desktop_to_phone(Rig& rig, Phone& phone, int writes) {
    AppWriter app(rig.desktop->db().string());
    ContentGenerator gen(21);
    return timed_writes("desktop", writes, [&](const std::string& id) {
        test::ItemFields note;
        note.source_id = id;
        note.title = "Note " + id;
        note.content = gen.next();
        const auto t0 = Clock::now();
        app.upsert_item(note);
        phone.wait_until(kVisible, {"note", id});
        return ms_since(t0);
    });
}

// The floor through PowerSync: the same notes INSERTed straight into
// lestash.items (autocommit), timed until the phone shows them.
std::vector<double> postgres_to_phone(Rig& rig, Phone& phone, int writes) {
    pqxx::connection conn(rig.admin);
    conn.prepare("insert",
                 "INSERT INTO lestash.items (source_type, source_id, title, content) "
                 "VALUES ('raw', $1, $2, $3)");
    ContentGenerator gen(21);
    return timed_writes("raw", writes, [&](const std::string& id) {
        const std::string content = gen.next();
        const auto t0 = Clock::now();
        pqxx::nontransaction(conn).exec_prepared("insert", id, "Note " + id, content);
        phone.wait_until(kVisible, {"raw", id});
        return ms_since(t0);
    });
}

// Until the desktop's database has the note; polled every millisecond.
void wait_on_desktop(const Rig& rig, const std::string& source_type, const std::string& id) {
    sqlite::Connection db(rig.desktop->db().string(), SQLITE_OPEN_READONLY);
    sqlite::Statement st(db, "SELECT count(*) FROM items WHERE source_type = ? AND source_id = ?");
    const auto deadline = Clock::now() + 60s;
    for (;;) {
        st.reset();
        st.bind_all(source_type, id);
        st.step();
        if (st.integer(0) == 1)
            return;
        if (Clock::now() > deadline)
            throw std::runtime_error("note " + id + " never reached the desktop");
        std::this_thread::sleep_for(1ms);
    }
}

// Single notes written on the phone (its own write transaction, uploaded by
// the connector to lestash-endpoint), each timed until the desktop has it.
std::vector<double> phone_to_desktop(Rig& rig, Phone& phone, int writes) {
    ContentGenerator gen(23);
    return timed_writes("phone", writes, [&](const std::string& id) {
        const std::string content = gen.next();
        const auto t0 = Clock::now();
        phone.call(
            {{"op", "write"},
             {"statements",
              json::array({json::array({"INSERT INTO items (id, source_type, source_id, title, "
                                        "content) VALUES (?, 'phone', ?, ?, ?)",
                                        {random_uuid(), id, "Note " + id, content}})})}});
        wait_on_desktop(rig, "phone", id);
        return ms_since(t0);
    });
}

// The floor: the same notes INSERTed straight into Postgres, until the desktop has them.
std::vector<double> postgres_to_desktop(Rig& rig, int writes) {
    pqxx::connection conn(rig.admin);
    ContentGenerator gen(23);
    return timed_writes("rawdesk", writes, [&](const std::string& id) {
        const std::string content = gen.next();
        const auto t0 = Clock::now();
        pqxx::nontransaction(conn).exec_params(
            "INSERT INTO lestash.items (source_type, source_id, title, content) VALUES "
            "('rawdesk', $1, $2, $3)",
            id, "Note " + id, content);
        wait_on_desktop(rig, "rawdesk", id);
        return ms_since(t0);
    });
}

// One phone transaction of `ops` new notes, as the SDK serializes it.
std::string upload_body(std::int64_t tx, int ops, const std::string& prefix) {
    ContentGenerator gen(static_cast<std::uint32_t>(tx));
    json crud = json::array();
    for (int i = 0; i < ops; ++i)
        crud.push_back({{"op", "PUT"},
                        {"type", "items"},
                        {"id", random_uuid()},
                        {"data",
                         {{"source_type", "bulkphone"},
                          {"source_id", prefix + std::to_string(tx) + "-" + std::to_string(i)},
                          {"title", "Note " + std::to_string(i)},
                          {"content", gen.next()}}}});
    return json{{"transaction_id", tx}, {"crud", crud}}.dump();
}

// 1000-op transactions three ways in one run: over HTTP through
// lestash-endpoint, straight through lestash.apply_phone_transaction, and
// the same rows as one raw multi-row INSERT; ops/s of each.
json apply_throughput(Rig& rig, int transactions, int ops) {
    Upstream up(rig.admin);
    const PhoneSchema schema = load_phone_schema(up);
    pqxx::connection conn(rig.admin);
    const std::string device =
        pqxx::nontransaction(conn)
            .exec1("SELECT lestash.create_device('bench direct', '\\x00', '1 minute')")[0]
            .as<std::string>();
    pqxx::nontransaction(conn).exec_params(
        "UPDATE lestash.devices SET credential_hash = '\\x01' WHERE id = $1", device);
    auto timed = [&](const std::function<void(std::int64_t)>& one) {
        const auto t0 = Clock::now();
        for (int t = 0; t < transactions; ++t) one(t + 1);
        const double s = ms_since(t0) / 1000.0;
        return json{{"seconds", s}, {"ops_per_s", transactions * ops / s}};
    };
    json r;
    r["function"] = timed([&](std::int64_t tx) {
        apply_phone_transaction(up, device, parse_upload(upload_body(tx, ops, "fn-"), schema));
    });
    r["raw_insert"] = timed([&](std::int64_t tx) {
        const auto body = json::parse(upload_body(tx, ops, "raw-"));
        std::string values;
        pqxx::work w(conn);
        for (const auto& op : body["crud"])
            values += (values.empty() ? "(" : ", (") + w.quote(op["id"].get<std::string>()) +
                      "::uuid, " + w.quote(op["data"]["source_type"].get<std::string>()) + ", " +
                      w.quote(op["data"]["source_id"].get<std::string>()) + ", " +
                      w.quote(op["data"]["title"].get<std::string>()) + ", " +
                      w.quote(op["data"]["content"].get<std::string>()) + ")";
        w.exec("INSERT INTO lestash.items (id, source_type, source_id, title, content) VALUES " +
               values);
        w.commit();
    });
    // Over HTTP as a paired phone would send them.
    const std::string code = rig.endpoint->pairing_code("bench http");
    const auto paired = json::parse(
        test::http_post(rig.endpoint->url() + "/api/pair", json{{"code", code}}.dump(), ""));
    const std::string token =
        sign_token(hs256_key("lestash-hs256", rig.service->jwt_key(), "bench"),
                   {{"sub", paired["device_id"]},
                    {"aud", "lestash-powersync"},
                    {"iat", std::time(nullptr)},
                    {"exp", std::time(nullptr) + 3600}});
    r["http"] = timed([&](std::int64_t tx) {
        const auto answer = json::parse(test::http_post(rig.endpoint->url() + "/api/upload",
                                                        upload_body(tx, ops, "http-"), token));
        if (answer.value("applied", 0) != ops)
            throw std::runtime_error("upload not applied: " + answer.dump().substr(0, 300));
    });
    r["ops_per_transaction"] = ops;
    r["transactions"] = transactions;
    r["function_vs_raw"] =
        r["function"]["ops_per_s"].get<double>() / r["raw_insert"]["ops_per_s"].get<double>();
    return r;
}

// `items` notes of about 1.5 KB, each with one of kTags tags, written
// straight into Postgres (the phone's first sync does not care who wrote them).
void seed(Rig& rig, int items) {
    pqxx::connection conn(rig.admin);
    pqxx::work w(conn);
    w.exec("INSERT INTO lestash.tags (name) SELECT 'bench-' || g FROM generate_series(0, " +
           std::to_string(kTags - 1) + ") g");
    w.exec(
        "INSERT INTO lestash.items (source_type, source_id, url, title, content, author, "
        "created_at, metadata) SELECT 'bulk', 'bulk-' || g, 'https://example.org/' || g, "
        "'Item ' || g, repeat(md5(g::text) || ' ', 45), 'author', '2024-01-01 10:00:00', "
        "'{\"k\": ' || g || '}' FROM generate_series(1, " +
        std::to_string(items) + ") g");
    w.exec(
        "INSERT INTO lestash.item_tags (item_id, tag_id) SELECT i.id, t.id FROM lestash.items i "
        "JOIN lestash.tags t ON t.name = 'bench-' || (substr(i.source_id, 6)::int % " +
        std::to_string(kTags) + ") WHERE i.source_type = 'bulk'");
    w.commit();
}

// Rows of every synced table, and a plain SELECT of the same columns: the
// floor for reading them out of Postgres at all.
std::pair<std::int64_t, double> select_everything(const Rig& rig,
                                                  const std::vector<test::SyncedTable>& tables) {
    pqxx::connection conn(rig.admin);
    pqxx::read_transaction txn(conn);
    std::int64_t rows = 0;
    const auto t0 = Clock::now();
    for (const auto& t : tables) {
        std::string columns;
        for (const auto& c : t.columns) columns += (columns.empty() ? "" : ", ") + c;
        rows += static_cast<std::int64_t>(
            txn.exec("SELECT " + columns + " FROM lestash." + t.table).size());
    }
    return {rows, ms_since(t0) / 1000.0};
}

}  // namespace

json bench_phone(const fs::path& dir, const PhoneBenchOptions& options) {
    const PowerSyncTools tools{options.powersync_dir.empty() ? LESTASH_POWERSYNC_DIR
                                                             : options.powersync_dir};
    tools.require();
    const std::string syncd =
        options.syncd_path.empty()
            ? (fs::read_symlink("/proc/self/exe").parent_path() / "lestash-syncd").string()
            : options.syncd_path;
    Rig rig(dir, tools, syncd);
    json r = {{"writes", options.writes},
              {"pause_ms", {kPauseMinMs, kPauseMaxMs}},
              {"service_ready_seconds", rig.service->seconds_to_ready()}};

    // 1. Latency, desktop then raw, through the same service to the same phone.
    auto phone = rig.new_phone("phone-a");
    phone->connect();
    const auto ours = latency_summary(desktop_to_phone(rig, *phone, options.writes));
    const auto raw = latency_summary(postgres_to_phone(rig, *phone, options.writes));
    json ratio;
    for (const char* p : {"p50", "p95", "p99", "max"})
        ratio[p] = ours[p].get<double>() / raw[p].get<double>();
    r["latency_ms"] = {{"desktop_to_phone", ours}, {"postgres_to_phone", raw}, {"ratio", ratio}};

    // 2. The phone writing: a note on the phone until the desktop has it,
    // beside a raw INSERT into Postgres reaching the same desktop.
    {
        auto writer = rig.writing_phone("phone-w");
        writer->connect();
        r["apply"] = apply_throughput(rig, 5, 1000);
        std::fprintf(stderr, "phone transactions: %s\n", r["apply"].dump().c_str());
        const auto up = latency_summary(phone_to_desktop(rig, *writer, options.writes));
        const auto floor = latency_summary(postgres_to_desktop(rig, options.writes));
        json up_ratio;
        for (const char* p : {"p50", "p95", "p99", "max"})
            up_ratio[p] = up[p].get<double>() / floor[p].get<double>();
        r["latency_ms"]["phone_to_desktop"] = up;
        r["latency_ms"]["postgres_to_desktop"] = floor;
        r["latency_ms"]["phone_ratio"] = up_ratio;
    }

    // 3. A fresh phone's first sync of a large stash, once the service has it all.
    auto t0 = Clock::now();
    seed(rig, options.items);
    phone->wait_until("SELECT count(*) >= ? FROM items WHERE source_type = 'bulk'", {options.items},
                      std::chrono::seconds(600));
    const double live_s = ms_since(t0) / 1000.0;
    const auto tables = test::read_sync_config(test::project_sync_config());
    const auto [rows, select_s] = select_everything(rig, tables);
    auto fresh = rig.new_phone("phone-b");
    const double first_s = fresh->connect() / 1000.0;
    const auto dumped = fresh->dump({{"items", {"id"}}, {"item_tags", {"id"}}});
    if (dumped["items"].size() < static_cast<std::size_t>(options.items))
        throw std::runtime_error("the fresh phone has " + std::to_string(dumped["items"].size()) +
                                 " items after its first sync");
    r["first_sync"] = {
        {"items", options.items},
        {"rows", rows},
        {"seconds", first_s},
        {"rows_per_s", static_cast<double>(rows) / first_s},
        {"items_per_s", options.items / first_s},
        {"raw_select",
         {{"seconds", select_s}, {"rows_per_s", static_cast<double>(rows) / select_s}}},
        {"rows_per_s_ratio", select_s / first_s},
        {"live_phone_seconds", live_s}};
    return r;
}

void print_phone_table(const json& r) {
    const auto& lat = r["latency_ms"];
    std::printf("PowerSync service ready (first snapshot replicated) %.1f s after start\n",
                r["service_ready_seconds"].get<double>());
    std::printf("to the phone, ms (%d single-note writes each, %d-%d ms apart)\n",
                r["writes"].get<int>(), kPauseMinMs, kPauseMaxMs);
    std::printf("  %-36s %8s %8s %8s %8s\n", "", "p50", "p95", "p99", "max");
    const std::pair<const char*, const char*> rows[] = {
        {"desktop_to_phone", "desktop commit -> phone"},
        {"postgres_to_phone", "raw Postgres INSERT -> phone"},
        {"ratio", "ratio desktop/raw"}};
    for (const auto& [key, label] : rows)
        std::printf("  %-36s %8.2f %8.2f %8.2f %8.2f\n", label, lat[key]["p50"].get<double>(),
                    lat[key]["p95"].get<double>(), lat[key]["p99"].get<double>(),
                    lat[key]["max"].get<double>());
    std::printf("from the phone to a desktop, ms (%d single-note writes each)\n",
                r["writes"].get<int>());
    std::printf("  %-36s %8s %8s %8s %8s\n", "", "p50", "p95", "p99", "max");
    const std::pair<const char*, const char*> up_rows[] = {
        {"phone_to_desktop", "phone write -> desktop"},
        {"postgres_to_desktop", "raw Postgres INSERT -> desktop"},
        {"phone_ratio", "ratio phone/raw"}};
    for (const auto& [key, label] : up_rows)
        std::printf("  %-36s %8.2f %8.2f %8.2f %8.2f\n", label, lat[key]["p50"].get<double>(),
                    lat[key]["p95"].get<double>(), lat[key]["p99"].get<double>(),
                    lat[key]["max"].get<double>());
    const auto& a = r["apply"];
    std::printf("phone transactions of %d new notes (%d of them), ops/s\n",
                a["ops_per_transaction"].get<int>(), a["transactions"].get<int>());
    const std::pair<const char*, const char*> apply_rows[] = {
        {"http", "POST /api/upload (lestash-endpoint)"},
        {"function", "lestash.apply_phone_transaction"},
        {"raw_insert", "raw multi-row INSERT"}};
    for (const auto& [key, label] : apply_rows)
        std::printf("  %-36s %10.0f\n", label, a[key]["ops_per_s"].get<double>());
    std::printf("  %-36s %10.3f\n", "ratio function/raw", a["function_vs_raw"].get<double>());
    const auto& f = r["first_sync"];
    std::printf("first sync of a fresh phone: %d items, %lld rows in all synced tables\n",
                f["items"].get<int>(), static_cast<long long>(f["rows"].get<std::int64_t>()));
    std::printf("  %-36s %8s %10s\n", "", "seconds", "rows/s");
    std::printf("  %-36s %8.2f %10.0f\n", "phone first sync", f["seconds"].get<double>(),
                f["rows_per_s"].get<double>());
    std::printf("  %-36s %8.2f %10.0f\n", "raw SELECT of the same rows",
                f["raw_select"]["seconds"].get<double>(),
                f["raw_select"]["rows_per_s"].get<double>());
    std::printf("  %-36s %19.3f\n", "rows/s ratio phone/raw", f["rows_per_s_ratio"].get<double>());
    std::printf("  (%d items written into Postgres reached the connected phone in %.2f s)\n",
                f["items"].get<int>(), f["live_phone_seconds"].get<double>());
}

}  // namespace lestash::bench
