// Push, pull and bootstrap rows/s, each measured beside a raw baseline doing
// the same work without lestash-sync in the same run; peak RSS of a fresh
// replica's bootstrap; disk used by the daemon's own tables.
#include "sync_bench.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <thread>

#include "app_writer.hpp"
#include "bench_common.hpp"
#include "lestash_sync/common/proc.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/capture.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/replica/write_pacer.hpp"
#include "lestash_sync/upstream/local_postgres.hpp"

namespace lestash::bench {
namespace fs = std::filesystem;
using nlohmann::json;

void drop_capture_triggers(sqlite::Connection& db) {
    for (const auto& spec : default_table_specs())
        for (const auto& name : capture_trigger_names(spec))
            db.exec("DROP TRIGGER IF EXISTS " + sqlite::quote_identifier(name));
}

namespace {

// lestash-syncd beside this binary.
std::string syncd_path() {
    return (fs::read_symlink("/proc/self/exe").parent_path() / "lestash-syncd").string();
}

// The "peak RSS N MiB" lestash-syncd --once and verify print last.
double peak_rss_in(const std::string& output) {
    const auto at = output.rfind("peak RSS ");
    return at == std::string::npos ? 0 : std::stod(output.substr(at + 9));
}

struct ItemRow {
    std::string source_id, url, title, content;
};

// `text_kb` 0: notes of 1-2 KB; else every content exactly that many KB
// (an enriched PDF's text).
std::vector<ItemRow> make_rows(int n, unsigned seed, const std::string& prefix, int text_kb) {
    ContentGenerator gen(seed);
    std::vector<ItemRow> rows;
    rows.reserve(static_cast<size_t>(n));
    const size_t size = static_cast<size_t>(text_kb) * 1024;
    for (int i = 0; i < n; ++i) {
        const std::string id = prefix + std::to_string(i);
        std::string content = gen.next();
        while (content.size() < size) content += gen.next();
        if (size > 0)
            content.resize(size);  // the generator writes ASCII: no character is cut
        rows.push_back({id, "https://example.org/" + id, "Item " + id, std::move(content)});
    }
    return rows;
}

// How much this process's peak RSS rose above its RSS at the start, over
// what runs in between (Linux resets the peak on "5" to clear_refs).
class PeakGrowth {
  public:
    PeakGrowth() {
        std::ofstream("/proc/self/clear_refs") << "5";
        start_kb_ = proc::memory(::getpid())->rss_kb;
    }
    double mib() const {
        return static_cast<double>(proc::memory(::getpid())->peak_rss_kb - start_kb_) / 1024.0;
    }

  private:
    std::int64_t start_kb_ = 0;
};

const char* kInsertItem =
    "INSERT INTO items (source_type, source_id, url, title, content, author, created_at, metadata) "
    "VALUES ('bench', ?, ?, ?, ?, 'author', '2024-01-01 10:00:00', '{\"k\": 1}')";

// Raw SQLite: the same rows straight into a v11 database (FTS5 triggers on),
// `batch` rows per transaction, as an apply does.
double raw_sqlite_insert(const std::string& path, const std::vector<ItemRow>& rows, int batch) {
    { Replica create({path}); }  // a v11 database...
    sqlite::Connection db(path, SQLITE_OPEN_READWRITE);
    drop_capture_triggers(db);  // ...without the daemon's triggers
    const auto t0 = Clock::now();
    sqlite::Statement ins(db, kInsertItem);
    for (size_t i = 0; i < rows.size(); i += static_cast<size_t>(batch)) {
        sqlite::Transaction txn(db);
        for (size_t j = i; j < std::min(rows.size(), i + static_cast<size_t>(batch)); ++j) {
            ins.bind_all(rows[j].source_id, rows[j].url, rows[j].title, rows[j].content);
            ins.run();
        }
        txn.commit();
    }
    return seconds_since(t0);
}

// Raw Postgres: multi-row INSERT ... ON CONFLICT into a plain table with the
// same columns, `batch` rows per statement and transaction.
double raw_postgres_upsert(const std::string& conninfo, const std::vector<ItemRow>& rows, int batch,
                           const std::string& table) {
    pqxx::connection conn(conninfo);
    {
        pqxx::work w(conn);
        w.exec("CREATE TABLE " + table +
               " (id uuid PRIMARY KEY, source_type text, source_id text, "
               "url text, title text, content text, author text, created_at text, metadata text)");
        w.commit();
    }
    const auto t0 = Clock::now();
    for (size_t i = 0; i < rows.size(); i += static_cast<size_t>(batch)) {
        std::string sql = "INSERT INTO " + table +
                          " (id, source_type, source_id, url, title, content, author, created_at, "
                          "metadata) VALUES ";
        std::vector<std::string> params;
        const size_t end = std::min(rows.size(), i + static_cast<size_t>(batch));
        for (size_t j = i; j < end; ++j) {
            const size_t p = params.size();
            auto arg = [&](size_t k) {
                std::string placeholder(1, '$');  // GCC 12 -Wrestrict misfires on "$" + string
                return placeholder.append(std::to_string(p + k));
            };
            sql += j > i ? ", (" : "(";
            sql += arg(1) + "::uuid, 'bench', " + arg(2) + ", " + arg(3) + ", " + arg(4) + ", " +
                   arg(5) + ", 'author', '2024-01-01 10:00:00', '{\"k\": 1}')";
            params.push_back(random_uuid());
            params.push_back(rows[j].source_id);
            params.push_back(rows[j].url);
            params.push_back(rows[j].title);
            params.push_back(rows[j].content);
        }
        sql += " ON CONFLICT (id) DO UPDATE SET title = excluded.title, content = excluded.content";
        pqxx::work w(conn);
        w.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
        w.commit();
    }
    return seconds_since(t0);
}

void app_insert(const std::string& path, const std::vector<ItemRow>& rows) {
    sqlite::Connection db(path, SQLITE_OPEN_READWRITE);
    sqlite::Statement ins(db, kInsertItem);
    for (size_t i = 0; i < rows.size(); i += 1000) {
        sqlite::Transaction txn(db);
        for (size_t j = i; j < std::min(rows.size(), i + 1000); ++j) {
            ins.bind_all(rows[j].source_id, rows[j].url, rows[j].title, rows[j].content);
            ins.run();
        }
        txn.commit();
    }
}

// Runs a program; returns its wall time and its output.
std::pair<double, std::string> run_timed(const std::string& command) {
    std::fflush(nullptr);
    const auto t0 = Clock::now();
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe)
        throw std::runtime_error("cannot run " + command);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    if (::pclose(pipe) != 0)
        throw std::runtime_error(command + " failed: " + out);
    return {seconds_since(t0), out};
}

// Bytes of the daemon's own tables and indexes, and of everything else.
std::pair<std::int64_t, std::int64_t> disk_split(const std::string& path) {
    sqlite::Connection db(path, SQLITE_OPEN_READONLY);
    return {db.query_int("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE "
                         "'\\_lestash\\_sync\\_%' ESCAPE '\\' OR name LIKE "
                         "'sqlite_autoindex\\__lestash\\_sync\\_%' ESCAPE '\\'"),
            db.query_int("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE NOT (name LIKE "
                         "'\\_lestash\\_sync\\_%' ESCAPE '\\' OR name LIKE "
                         "'sqlite_autoindex\\__lestash\\_sync\\_%' ESCAPE '\\')")};
}

}  // namespace

std::vector<std::string> capture_trigger_names_of(const TableSpec& spec);

namespace {

constexpr int kPushBatch = 500, kPullBatch = 2000;

SyncOptions bench_options() {
    SyncOptions o;
    o.push_batch = kPushBatch;
    o.pull_batch = kPullBatch;
    return o;
}

// What every phase works on: a scratch database with the migrations
// applied, two replicas A and B, and the rows A's app writes.
struct SyncBench {
    fs::path dir;
    std::string conninfo;
    std::string a_path, b_path;
    std::vector<ItemRow> rows, more;
    int items = 0;
    bool app_open = false;
};

// With `open`, the app (the sqlite3 shell) connected to the database at
// `path` and idle, returned once it is: the engine's write pacer then leaves
// its gaps.
std::unique_ptr<test::ConnectedShell> app_connection(const std::string& path, bool open) {
    if (!open)
        return nullptr;
    { Replica create({path}); }  // the app's database exists before it connects
    auto shell = std::make_unique<test::ConnectedShell>(path);
    // Only a connection of our own can ask whether another holds its lock.
    sqlite::Connection probe(path, SQLITE_OPEN_READONLY);
    probe.query_int("SELECT count(*) FROM items");
    for (int i = 0; i < 1000 && !other_process_has_open(path); ++i)  // at most 10 s
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return shell;
}

// "<phase>_rows_per_s" and "<phase>_raw_rows_per_s" for `items` rows, and
// "<phase>_ratio": the raw baseline's time over ours.
void record_rates(json& r, const std::string& phase, int items, double ours_s, double raw_s) {
    r[phase + "_rows_per_s"] = items / ours_s;
    r[phase + "_raw_rows_per_s"] = items / raw_s;
    r[phase + "_ratio"] = raw_s / ours_s;
}

// Push: A's outbox (every item) to Postgres, against raw multi-row upserts
// of the same rows, run before and after ours and averaged (the server's
// state drifts as it fills).
void bench_push(const SyncBench& b, json& r) {
    Replica a({b.a_path});
    app_insert(b.a_path, b.rows);
    Upstream up(b.conninfo);
    SyncEngine engine(a, up, bench_options());
    const double raw_before = raw_postgres_upsert(b.conninfo, b.rows, kPushBatch, "bench_raw_1");
    const PeakGrowth memory;
    const auto t0 = Clock::now();
    engine.push_all();
    const double ours = seconds_since(t0);
    r["push_peak_rss_growth_mib"] = memory.mib();
    const double raw =
        (raw_before + raw_postgres_upsert(b.conninfo, b.rows, kPushBatch, "bench_raw_2")) / 2;
    record_rates(r, "push", b.items, ours, raw);
}

// Bootstrap: the real daemon (lestash-syncd --once, beside this binary)
// brings a fresh replica up to date, so wall time and peak RSS are its own;
// against raw inserts of the same rows into a v11 database.
void bench_bootstrap(const SyncBench& b, json& r) {
    const auto app = app_connection(b.b_path, b.app_open);
    const auto [secs, output] =
        run_timed(syncd_path() + " --db '" + b.b_path + "' --postgres '" + b.conninfo + "' --once");
    const double rss_mib = peak_rss_in(output);
    const double raw = raw_sqlite_insert((b.dir / "raw1.db").string(), b.rows, kPullBatch);
    r["bootstrap_seconds"] = secs;
    record_rates(r, "bootstrap", b.items, secs, raw);
    r["bootstrap_peak_rss_mib"] = rss_mib;
}

// Pull: A writes and pushes as many new items; B follows the change log.
void bench_pull(const SyncBench& b, json& r) {
    {
        Replica a({b.a_path});
        app_insert(b.a_path, b.more);
        Upstream up(b.conninfo);
        SyncEngine(a, up, bench_options()).push_all();
    }
    const auto app = app_connection(b.b_path, b.app_open);
    Replica replica({b.b_path});
    Upstream up(b.conninfo);
    SyncEngine engine(replica, up, bench_options());
    const PeakGrowth memory;
    const auto t0 = Clock::now();
    engine.pull_all();
    const double ours = seconds_since(t0);
    r["pull_peak_rss_growth_mib"] = memory.mib();
    const double raw = raw_sqlite_insert((b.dir / "raw2.db").string(), b.more, kPullBatch);
    record_rates(r, "pull", b.items, ours, raw);
    // B was away while A wrote as many items as B first bootstrapped: how
    // its catching up compares with that bootstrap.
    r["catchup_seconds"] = ours;
    r["catchup_over_bootstrap"] = ours / r["bootstrap_seconds"].get<double>();
}

// Verify: the real daemon compares the replica (both rounds of items) with
// Postgres row by row; its peak RSS against the bootstrap's.
void bench_verify(const SyncBench& b, json& r) {
    const auto [secs, output] =
        run_timed(syncd_path() + " --db '" + b.b_path + "' --postgres '" + b.conninfo + "' verify");
    r["verify_seconds"] = secs;
    r["verify_peak_rss_mib"] = peak_rss_in(output);
}

}  // namespace

json bench_sync(const fs::path& dir, const SyncBenchOptions& options) {
    const int items = options.items, text_kb = options.text_kb;
    std::unique_ptr<LocalPostgres> server;
    std::string admin = options.admin_conninfo;
    if (admin.empty()) {
        server = std::make_unique<LocalPostgres>(LocalPostgresOptions{"", false, true});
        admin = server->conninfo();
    }
    const std::string scratch = "lestash_bench_" + std::to_string(::getpid());
    {
        pqxx::connection c(admin);
        pqxx::nontransaction(c).exec("CREATE DATABASE " + scratch);
    }
    const SyncBench bench{dir,
                          admin + " dbname=" + scratch,
                          (dir / "a.db").string(),
                          (dir / "b.db").string(),
                          make_rows(items, 11, "p", text_kb),
                          make_rows(items, 12, "q", text_kb),
                          items,
                          options.app_open};
    apply_migrations(bench.conninfo);

    json r = {{"items", items}, {"text_kb", text_kb}, {"app_open", options.app_open}};
    bench_push(bench, r);
    if (!options.push_only) {
        bench_bootstrap(bench, r);
        bench_pull(bench, r);
        bench_verify(bench, r);
        const auto [daemon_bytes, app_bytes] = disk_split(bench.b_path);
        r["metadata_bytes"] = daemon_bytes;
        r["app_bytes"] = app_bytes;
        r["metadata_ratio"] = static_cast<double>(daemon_bytes) / static_cast<double>(app_bytes);
    }

    pqxx::connection c(admin);
    pqxx::nontransaction(c).exec("DROP DATABASE " + scratch + " WITH (FORCE)");
    return r;
}

void print_sync_table(const json& r) {
    const int kb = r["text_kb"].get<int>();
    std::printf("sync throughput (%d items of %s%s)\n", r["items"].get<int>(),
                kb > 0 ? (std::to_string(kb) + " KB").c_str() : "1-2 KB",
                r["app_open"].get<bool>() ? ", the app connected to B" : "");
    std::printf("  %-10s %12s %12s %8s\n", "phase", "rows/s", "raw rows/s", "ratio");
    for (const char* phase : {"push", "pull", "bootstrap"}) {
        const std::string k = phase;
        if (!r.contains(k + "_ratio"))
            continue;
        std::printf("  %-10s %12.0f %12.0f %8.2f\n", phase, r[k + "_rows_per_s"].get<double>(),
                    r[k + "_raw_rows_per_s"].get<double>(), r[k + "_ratio"].get<double>());
    }
    std::printf("  push: peak RSS +%.1f MiB\n", r["push_peak_rss_growth_mib"].get<double>());
    if (!r.contains("bootstrap_seconds"))
        return;
    std::printf("  pull: peak RSS +%.1f MiB; catching up %.1f s = %.2f x the bootstrap\n",
                r["pull_peak_rss_growth_mib"].get<double>(), r["catchup_seconds"].get<double>(),
                r["catchup_over_bootstrap"].get<double>());
    std::printf("  bootstrap: %.1f s wall, peak RSS %.1f MiB\n",
                r["bootstrap_seconds"].get<double>(), r["bootstrap_peak_rss_mib"].get<double>());
    std::printf("  verify (%d items): %.1f s wall, peak RSS %.1f MiB\n", 2 * r["items"].get<int>(),
                r["verify_seconds"].get<double>(), r["verify_peak_rss_mib"].get<double>());
    std::printf("  sync metadata: %.1f MiB of %.1f MiB app data (%.1f%%)\n",
                r["metadata_bytes"].get<double>() / 1048576.0,
                r["app_bytes"].get<double>() / 1048576.0,
                100.0 * r["metadata_ratio"].get<double>());
}

}  // namespace lestash::bench
