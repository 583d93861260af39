// The media benchmark (see media_bench.hpp). The file is random bytes (it
// does not compress, as photos and PDFs do not), written where the app
// writes it, with its item_media row written as the app does.
#include "media_bench.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <thread>

#include "app_writer.hpp"
#include "bench_common.hpp"
#include "lestash_sync/common/sha256.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/upstream/local_postgres.hpp"
#include "lestash_sync/upstream/upstream.hpp"
#include "syncd_process.hpp"

namespace lestash::bench {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kConfig =
    "[sync]\ntables = [\"items\", \"item_history\", \"tags\", \"item_tags\", \"sources\", "
    "\"sync_log\", \"item_media\"]\n[media]\nmax_file_mb = 1048576\n";

std::string random_mib(std::mt19937_64& rng) {
    std::string out(std::size_t{1} << 20, '\0');
    for (std::size_t i = 0; i < out.size(); i += 8) {
        const auto v = rng();
        std::memcpy(out.data() + i, &v, 8);
    }
    return out;
}

// `mb` MiB written to `path` a MiB at a time; returns its sha256.
std::string write_random_file(const fs::path& path, int mb) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    std::mt19937_64 rng(2024);
    Sha256 hash;
    for (int i = 0; i < mb; ++i) {
        const auto chunk = random_mib(rng);
        hash.update(chunk);
        out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
    out.close();
    if (!out)
        throw std::runtime_error("cannot write " + path.string());
    return hash.hex_digest();
}

std::string sha256_of_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::string buffer(std::size_t{1} << 20, '\0');
    Sha256 hash;
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(in.gcount())));
    }
    return hash.hex_digest();
}

// The raw baseline: the same bytes as one binary bytea parameter in one
// INSERT, and back as one binary result of one SELECT.
json raw_round_trip(const std::string& conninfo, int mb) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK)
        throw std::runtime_error(std::string("raw baseline: ") + PQerrorMessage(conn.get()));
    auto check = [&](PGresult* r) {
        const auto st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            const std::string msg = PQresultErrorMessage(r);
            PQclear(r);
            throw std::runtime_error("raw baseline: " + msg);
        }
        return r;
    };
    PQclear(check(PQexec(conn.get(), "CREATE TABLE raw_blob (id int PRIMARY KEY, data bytea)")));
    PQclear(check(PQexec(conn.get(), "ALTER TABLE raw_blob ALTER data SET STORAGE EXTERNAL")));
    std::string bytes;
    std::mt19937_64 rng(2024);
    for (int i = 0; i < mb; ++i) bytes += random_mib(rng);
    const char* values[] = {bytes.data()};
    const int lengths[] = {static_cast<int>(bytes.size())};
    const int formats[] = {1};
    auto t0 = Clock::now();
    PQclear(check(PQexecParams(conn.get(), "INSERT INTO raw_blob VALUES (1, $1)", 1, nullptr,
                               values, lengths, formats, 0)));
    const double insert_s = seconds_since(t0);
    t0 = Clock::now();
    PGresult* r = check(PQexecParams(conn.get(), "SELECT data FROM raw_blob WHERE id = 1", 0,
                                     nullptr, nullptr, nullptr, nullptr, 1));
    const bool same = PQgetlength(r, 0, 0) == lengths[0] &&
                      std::memcmp(PQgetvalue(r, 0, 0), bytes.data(), bytes.size()) == 0;
    PQclear(r);
    const double select_s = seconds_since(t0);
    if (!same)
        throw std::runtime_error("raw baseline: the bytes did not come back the same");
    return {{"insert_s", insert_s}, {"select_s", select_s}};
}

// Polls `condition` every 10 ms, sampling both daemons' RSS meanwhile.
double wait_for(const std::string& what, std::chrono::seconds timeout,
                std::vector<SyncdProcess*> daemons, std::vector<double>& max_rss,
                const std::function<bool()>& condition) {
    const auto t0 = Clock::now();
    for (;;) {
        for (std::size_t i = 0; i < daemons.size(); ++i) {
            if (!daemons[i]->running())
                throw std::runtime_error(daemons[i]->name() + " exited:\n" +
                                         daemons[i]->log_tail());
            max_rss[i] = std::max(max_rss[i], memory_of(daemons[i]->pid()).rss_mib);
        }
        if (condition())
            return seconds_since(t0);
        if (Clock::now() - t0 > timeout)
            throw std::runtime_error("gave up waiting for " + what + "; A's log:\n" +
                                     daemons[0]->log_tail() + "\nB's log:\n" +
                                     daemons[1]->log_tail());
        std::this_thread::sleep_for(10ms);
    }
}

}  // namespace

json bench_media(const fs::path& dir, const MediaBenchOptions& options) {
    const std::string syncd =
        options.syncd_path.empty()
            ? (fs::read_symlink("/proc/self/exe").parent_path() / "lestash-syncd").string()
            : options.syncd_path;
    if (::access(syncd.c_str(), X_OK) != 0)
        throw std::runtime_error("no lestash-syncd at " + syncd +
                                 " — build it (ninja lestash-syncd) or give --syncd");
    std::ofstream(dir / "sync.toml") << kConfig;
    // Durable (fsync on), as a user's server is; the raw baseline shares it.
    LocalPostgres postgres(LocalPostgresOptions{"", true, true});
    const std::string upstream = postgres.create_database("lestash");
    apply_migrations(postgres.conninfo(upstream));
    postgres.exec(
        "CREATE ROLE lestash_bench_daemon LOGIN PASSWORD 'bench-pw' IN ROLE lestash_sync");
    const std::string conninfo = postgres.conninfo_as("lestash_bench_daemon", "bench-pw", upstream);

    std::vector<std::unique_ptr<SyncdProcess>> daemons;
    std::vector<fs::path> dbs;
    for (const std::string name : {"a", "b"}) {
        fs::create_directories(dir / name);
        dbs.push_back(dir / name / "lestash.db");
        { Replica make(AttachOptions{dbs.back().string()}); }  // a new v11 database
        daemons.push_back(std::make_unique<SyncdProcess>(
            "lestash-syncd " + name, syncd,
            std::vector<std::string>{"--config", (dir / "sync.toml").string(), "--db",
                                     dbs.back().string(), "--postgres", conninfo, "--socket",
                                     (dir / (name + ".sock")).string(), "--replica",
                                     "bench-" + name, "--log-level", "debug"},
            dir / (name + ".log")));
    }
    std::vector<SyncdProcess*> both{daemons[0].get(), daemons[1].get()};
    std::vector<double> max_rss(2, 0.0);
    wait_for("both daemons' first sync cycle", 60s, both, max_rss, [&] {
        return daemons[0]->log().find("sync (start)") != std::string::npos &&
               daemons[1]->log().find("sync (start)") != std::string::npos;
    });
    std::this_thread::sleep_for(500ms);
    const Memory before_a = memory_of(both[0]->pid()), before_b = memory_of(both[1]->pid());

    // The file where the app keeps it, then its row, as the app writes them.
    test::AppWriter app(dbs[0].string());
    test::ItemFields item;
    item.source_type = "pdf";
    item.source_id = "bench-media";
    item.content = "a large attachment";
    const auto item_id = app.upsert_item(item);
    const std::string name = std::to_string(item_id) + "/";
    const fs::path staging = dir / "staging.bin";
    const std::string digest = write_random_file(staging, options.mb);
    const std::string relative = name + digest.substr(0, 12) + ".pdf";
    const fs::path on_a = dbs[0].parent_path() / "media" / relative;
    const fs::path on_b = dbs[1].parent_path() / "media" / relative;
    fs::create_directories(on_a.parent_path());
    fs::rename(staging, on_a);
    max_rss.assign(2, 0.0);
    const auto t0 = Clock::now();
    app.add_media_row(item_id, "pdf", std::nullopt, relative, "application/pdf");

    Upstream watch(postgres.conninfo(upstream));
    const auto uploaded = [&] {
        return watch.transact<pqxx::read_transaction>("watching", [&](pqxx::read_transaction& t) {
            return !t.exec_params("SELECT 1 FROM lestash.media_files WHERE path = $1", relative)
                        .empty();
        });
    };
    const auto timeout = std::chrono::seconds(60 + options.mb * 2);
    wait_for("the file in Postgres", timeout, both, max_rss, uploaded);
    const double upload_s = seconds_since(t0);
    wait_for("the file on B", timeout, both, max_rss, [&] { return fs::exists(on_b); });
    const double total_s = seconds_since(t0);
    if (sha256_of_file(on_b) != digest)
        throw std::runtime_error("the file on B is not the file on A");
    const Memory after_a = memory_of(both[0]->pid()), after_b = memory_of(both[1]->pid());

    json r = {
        {"mb", options.mb},
        {"upload_s", upload_s},
        {"end_to_end_s", total_s},
        {"end_to_end_mib_per_s", options.mb / total_s},
        {"memory_mib",
         {{"a",
           {{"before", before_a.rss_mib},
            {"max_sampled", max_rss[0]},
            {"peak", after_a.peak_rss_mib}}},
          {"b",
           {{"before", before_b.rss_mib},
            {"max_sampled", max_rss[1]},
            {"peak", after_b.peak_rss_mib}}}}},
        {"raw", raw_round_trip(postgres.conninfo(postgres.create_database("raw")), options.mb)}};
    const double raw_s = r["raw"]["insert_s"].get<double>() + r["raw"]["select_s"].get<double>();
    r["ratio_end_to_end_vs_raw"] = total_s / raw_s;
    for (auto& d : daemons) d->stop();
    return r;
}

void print_media_table(const json& r) {
    const double mb = r["mb"].get<double>();
    std::printf("media file A -> Postgres -> B (%d MiB, random bytes, 1 MiB chunks)\n",
                r["mb"].get<int>());
    std::printf("  %-44s %9s %9s\n", "", "seconds", "MiB/s");
    auto line = [&](const char* what, double s) {
        std::printf("  %-44s %9.2f %9.1f\n", what, s, mb / s);
    };
    line("ours: row on A -> file complete in Postgres", r["upload_s"].get<double>());
    line("ours: row on A -> file on B (verified)", r["end_to_end_s"].get<double>());
    line("raw: one INSERT of the bytes (binary)", r["raw"]["insert_s"].get<double>());
    line("raw: one SELECT of the bytes (binary)", r["raw"]["select_s"].get<double>());
    line("raw: INSERT + SELECT",
         r["raw"]["insert_s"].get<double>() + r["raw"]["select_s"].get<double>());
    std::printf("  ratio ours (row on A -> file on B) / raw (INSERT + SELECT): %.2f\n",
                r["ratio_end_to_end_vs_raw"].get<double>());
    std::printf("  daemon RSS, MiB (before / highest sampled during / peak VmHWM)\n");
    for (const char* who : {"a", "b"}) {
        const auto& m = r["memory_mib"][who];
        std::printf("  %-44s %9.1f %9.1f %9.1f\n", who[0] == 'a' ? "A (uploads)" : "B (downloads)",
                    m["before"].get<double>(), m["max_sampled"].get<double>(),
                    m["peak"].get<double>());
    }
}

}  // namespace lestash::bench
