// A desktop (a real lestash-syncd), the PowerSync service and phones on one
// private Postgres, timed from the outside (see phone_bench.hpp). The
// desktop is written as the Le Stash CLI writes (the tests' AppWriter); the
// phones are PowerSync's client core driven by tests/support/powersync_rig.
#include "phone_bench.hpp"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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

    fs::path dir;
    PowerSyncTools tools;
    std::unique_ptr<LocalPostgres> postgres;
    std::string database, admin;
    std::unique_ptr<Desktop> desktop;
    std::unique_ptr<PowerSyncService> service;
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

    // 2. A fresh phone's first sync of a large stash, once the service has it all.
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
