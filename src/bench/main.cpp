// lestash-bench: measured figures for the claims in DESIGN.md, each run side
// by side with its raw baseline in the same process, printed as a table (or
// one JSON object with --json). Not a test: no thresholds here.
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_common.hpp"
#include "daemon_bench.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "media_bench.hpp"
#include "phone_bench.hpp"
#include "sync_bench.hpp"

namespace fs = std::filesystem;
using lestash::sqlite::Connection;
using lestash::sqlite::Statement;
using lestash::sqlite::Transaction;
using namespace lestash::bench;

namespace {

struct WriteTimes {
    double insert_s = 0;
    double update_s = 0;
};

// Writes like the app: a prepared INSERT per item, `batch` items per
// transaction, then an UPDATE of every item's content (history trigger fires).
WriteTimes app_writes(const std::string& path, int items, int batch, unsigned seed) {
    Connection db(path, SQLITE_OPEN_READWRITE);
    sqlite3_busy_timeout(db.handle(), 5000);
    db.exec("PRAGMA foreign_keys = ON");
    ContentGenerator gen(seed);
    WriteTimes t;
    auto t0 = Clock::now();
    Statement ins(db,
                  "INSERT INTO items (source_type, source_id, url, title, content, author, "
                  "created_at, metadata) VALUES ('bench', ?, ?, ?, ?, 'author', "
                  "'2024-01-01 10:00:00', '{\"k\": 1}')");
    for (int i = 0; i < items; i += batch) {
        Transaction txn(db);
        for (int j = i; j < std::min(items, i + batch); ++j) {
            const std::string id = std::to_string(j);
            ins.bind_all(id, "https://example.org/" + id, "Item " + id, gen.next());
            ins.run();
        }
        txn.commit();
    }
    t.insert_s = seconds_since(t0);
    t0 = Clock::now();
    Statement upd(db, "UPDATE items SET content = ? WHERE id = ?");
    for (int i = 0; i < items; i += batch) {
        Transaction txn(db);
        for (int j = i; j < std::min(items, i + batch); ++j) {
            upd.bind_all(gen.next(), std::int64_t{j + 1});
            upd.run();
        }
        txn.commit();
    }
    t.update_s = seconds_since(t0);
    return t;
}

nlohmann::json bench_capture(const fs::path& dir, int items, int batch) {
    const std::string plain = (dir / "plain.db").string();
    const std::string captured = (dir / "captured.db").string();
    {
        // Both start as a new v11 database; only one gets the daemon's triggers.
        lestash::Replica make_plain({plain});
    }
    {
        Connection db(plain, SQLITE_OPEN_READWRITE);
        drop_capture_triggers(db);
    }
    { lestash::Replica attach({captured}); }
    const WriteTimes raw = app_writes(plain, items, batch, 7);
    const WriteTimes cap = app_writes(captured, items, batch, 7);
    Connection check(captured, SQLITE_OPEN_READONLY);
    return {
        {"items", items},
        {"batch", batch},
        {"insert_rows_per_s_raw", items / raw.insert_s},
        {"insert_rows_per_s_captured", items / cap.insert_s},
        {"insert_overhead_ratio", cap.insert_s / raw.insert_s},
        {"update_rows_per_s_raw", items / raw.update_s},
        {"update_rows_per_s_captured", items / cap.update_s},
        {"update_overhead_ratio", cap.update_s / raw.update_s},
        {"outbox_entries", lestash::Outbox(check).depth()},
    };
}

void print_table(const nlohmann::json& r) {
    std::printf("capture overhead (%d items, %d per transaction)\n", r["items"].get<int>(),
                r["batch"].get<int>());
    std::printf("  %-8s %14s %14s %8s\n", "write", "raw rows/s", "captured rows/s", "ratio");
    for (const char* op : {"insert", "update"}) {
        const std::string k = op;
        std::printf("  %-8s %14.0f %14.0f %8.3f\n", op, r[k + "_rows_per_s_raw"].get<double>(),
                    r[k + "_rows_per_s_captured"].get<double>(),
                    r[k + "_overhead_ratio"].get<double>());
    }
    std::printf("  outbox entries captured: %lld\n",
                static_cast<long long>(r["outbox_entries"].get<std::int64_t>()));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"lestash-bench: lestash-sync figures against raw baselines, in one run"};
    app.require_subcommand(1);
    int items = 100000, batch = 1000;
    SyncBenchOptions sync_options;
    bool json = false;
    std::string work_dir;
    auto* capture = app.add_subcommand("capture", "capture overhead on inserts and updates");
    capture->add_option("--items", items, "items to write")->check(CLI::PositiveNumber);
    capture->add_option("--batch", batch, "items per transaction")->check(CLI::PositiveNumber);
    auto* sync = app.add_subcommand("sync", "push, pull and bootstrap rates against raw baselines");
    sync->add_option("--items", sync_options.items, "items to sync")->check(CLI::PositiveNumber);
    sync->add_option("--postgres", sync_options.admin_conninfo,
                     "admin conninfo (a scratch database is created and dropped); default: a "
                     "private server started for the run");
    sync->add_flag("--push-only", sync_options.push_only, "measure the push phase alone");
    sync->add_flag("--app-open", sync_options.app_open,
                   "keep the sqlite3 shell connected to the bootstrapping and pulling replica, as "
                   "a running app would be");
    sync->add_option("--text-kb", sync_options.text_kb,
                     "every item's content this many KB (default: notes of 1-2 KB)")
        ->check(CLI::NonNegativeNumber);
    DaemonBenchOptions daemon_options;
    auto* daemon = app.add_subcommand(
        "daemon", "two running lestash-syncd: propagation latency, idle cost, memory, bulk rate");
    daemon->add_option("--writes", daemon_options.writes, "single-note writes timed for latency")
        ->check(CLI::PositiveNumber);
    daemon->add_option("--idle-seconds", daemon_options.idle_seconds, "idle window measured")
        ->check(CLI::PositiveNumber);
    daemon->add_option("--bulk", daemon_options.bulk, "notes of the one-transaction bulk write")
        ->check(CLI::PositiveNumber);
    daemon->add_option("--syncd", daemon_options.syncd_path,
                       "the lestash-syncd to run (default: the one beside lestash-bench)");
    FanoutBenchOptions fanout_options;
    auto* fanout = app.add_subcommand(
        "fanout", "one write on A reaching N running lestash-syncd: latency of the last, CPU");
    fanout
        ->add_option("--receivers", fanout_options.receivers,
                     "receiving replicas, one run per number (default: 5 20)")
        ->check(CLI::Range(1, 60));
    fanout->add_option("--writes", fanout_options.writes, "single-note writes timed per run")
        ->check(CLI::PositiveNumber);
    fanout->add_option("--syncd", fanout_options.syncd_path,
                       "the lestash-syncd to run (default: the one beside lestash-bench)");
    PhoneBenchOptions phone_options;
    auto* phone = app.add_subcommand(
        "phone", "PowerSync: desktop commit -> phone latency, a fresh phone's first sync");
    phone->add_option("--writes", phone_options.writes, "single-note writes timed, each path")
        ->check(CLI::PositiveNumber);
    phone->add_option("--items", phone_options.items, "items of the first sync")
        ->check(CLI::PositiveNumber);
    phone->add_option("--powersync", phone_options.powersync_dir,
                      "what tests/powersync/prepare.sh made (default: the build tree's, from "
                      "cmake --build BUILD --target powersync-tools)");
    phone->add_option("--syncd", phone_options.syncd_path,
                      "the lestash-syncd to run (default: the one beside lestash-bench)");
    MediaBenchOptions media_options;
    auto* media = app.add_subcommand(
        "media", "a media file between two running lestash-syncd: time, the daemons' memory");
    media->add_option("--mb", media_options.mb, "size of the file, MiB")
        ->check(CLI::Range(1, 4096));
    media->add_option("--syncd", media_options.syncd_path,
                      "the lestash-syncd to run (default: the one beside lestash-bench)");
    app.add_flag("--json", json, "print one JSON object instead of a table");
    app.add_option("--dir", work_dir, "where to put the scratch databases (default: a temp dir)");
    CLI11_PARSE(app, argc, argv);

    const fs::path dir = work_dir.empty() ? fs::temp_directory_path() /
                                                ("lestash-bench-" + std::to_string(::getpid()))
                                          : fs::path(work_dir);
    fs::create_directories(dir);
    int rc = 0;
    try {
        // One JSON object under the subcommand's name, or its table.
        auto report = [&](const char* name, const nlohmann::json& result,
                          void (*print)(const nlohmann::json&)) {
            if (json)
                std::cout << nlohmann::json{{name, result}}.dump() << "\n";
            else
                print(result);
        };
        if (*capture)
            report("capture", bench_capture(dir, items, batch), print_table);
        else if (*sync)
            report("sync", bench_sync(dir, sync_options), print_sync_table);
        else if (*media)
            report("media", bench_media(dir, media_options), print_media_table);
        else if (*fanout)
            report("fanout", bench_fanout(dir, fanout_options), print_fanout_table);
        else if (*phone)
            report("phone", bench_phone(dir, phone_options), print_phone_table);
        else
            report("daemon", bench_daemon(dir, daemon_options), print_daemon_table);
    } catch (const std::exception& e) {
        std::cerr << "lestash-bench: " << e.what() << "\n";
        rc = 1;
    }
    if (work_dir.empty())
        fs::remove_all(dir);
    return rc;
}
