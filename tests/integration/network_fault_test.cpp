// Network faults between the daemons and Postgres (issue 7, part 2). Two
// daemons reach the shared throwaway Postgres only through a FaultProxy,
// which cuts connections at random byte offsets (inside COPYs and COMMITs
// too: the proxy reads the protocol bytes and counts where each cut landed),
// stalls them, refuses them, and blackholes everything for longer than the
// daemons wait for an answer; Postgres itself is restarted in fast and in
// immediate mode. Meanwhile an app-like writer writes on each replica, psql-
// like writer writes straight to Postgres, and a bulk loader COPYs through the
// same proxy. Afterwards: every acknowledged write is in Postgres and on both
// replicas exactly once, verify finds no difference, FTS5 is intact, and the
// daemons never exited. Seeded: LESTASH_FAULT_SEED=N replays a run;
// LESTASH_FAULT_SECONDS sets the length of the random phase (default 20).
#include <libpq-fe.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "fault_proxy.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/control/control_client.hpp"
#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

std::uint64_t seed_from_env() {
    if (const char* s = std::getenv("LESTASH_FAULT_SEED"); s && *s)
        return std::stoull(s);
    return std::random_device{}() * 4294967296ull + std::random_device{}();
}

int seconds_from_env(const char* name, int fallback) {
    const char* s = std::getenv(name);
    return s && *s ? std::stoi(s) : fallback;
}

// What one writer had acknowledged: the content of each live item by
// source_id, the items it deleted, and its (source_id, tag) links.
struct Acknowledged {
    std::map<std::string, std::string> items;
    std::set<std::string> deleted;
    std::set<std::pair<std::string, std::string>> tags;
    int operations = 0, updates = 0, deletes = 0, errors = 0;
    std::string first_error;
};

// The Le Stash CLI on one replica: new notes, edits and deletions of its own
// notes, tags. Never asserts (it runs on its own thread).
void write_like_the_app(const std::string& db_path, const std::string& prefix, std::uint64_t seed,
                        const std::atomic<bool>& stop, Acknowledged& out, std::mutex& mutex) {
    std::mt19937_64 rng(seed);
    AppWriter app(db_path);
    std::vector<std::pair<std::string, std::int64_t>> mine;  // live items: source_id, local id
    for (int n = 0; !stop; ++n) {
        try {
            const auto dice = rng() % 100;
            if (dice < 60 || mine.size() < 5) {
                ItemFields item;
                item.source_id = prefix + std::to_string(n);
                item.title = "note " + *item.source_id;
                item.content = "written on " + prefix + " number " + std::to_string(n) + " " +
                               std::string(rng() % 300, 'x');
                const auto id = app.upsert_item(item);
                mine.emplace_back(*item.source_id, id);
                std::lock_guard<std::mutex> lock(mutex);
                out.items[*item.source_id] = item.content;
            } else if (dice < 80) {
                const auto& [source_id, id] = mine[rng() % mine.size()];
                const std::string content = "edited on " + prefix + " at op " + std::to_string(n);
                app.update_content(id, content);
                std::lock_guard<std::mutex> lock(mutex);
                out.items[source_id] = content;
                ++out.updates;
            } else if (dice < 93) {
                const auto& [source_id, id] = mine[rng() % mine.size()];
                const std::string tag = "tag-" + std::to_string(rng() % 8);
                app.add_tag(id, tag);
                std::lock_guard<std::mutex> lock(mutex);
                out.tags.insert({source_id, tag});
            } else {
                const auto at = rng() % mine.size();
                // Not a structured binding: clang 14 cannot capture one in the lambda below.
                const auto source_id = mine[at].first;
                const auto id = mine[at].second;
                app.delete_item(id);
                mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(at));
                std::lock_guard<std::mutex> lock(mutex);
                out.items.erase(source_id);
                out.deleted.insert(source_id);
                std::erase_if(out.tags, [&](const auto& t) { return t.first == source_id; });
                ++out.deletes;
            }
            std::lock_guard<std::mutex> lock(mutex);
            ++out.operations;
        } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(mutex);
            if (out.errors++ == 0)
                out.first_error = e.what();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10 + rng() % 50));
    }
}

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;

Connection connect_pg(const std::string& conninfo) {
    return Connection(PQconnectdb(conninfo.c_str()), &PQfinish);
}

// Runs one statement; true when it succeeded (a COMMIT only when it committed).
bool run(PGconn* conn, const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn, sql.c_str()), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK && PQresultStatus(r.get()) != PGRES_TUPLES_OK)
        return false;
    return sql != "COMMIT" || std::string(PQcmdStatus(r.get())) == "COMMIT";
}

std::string literal(PGconn* conn, const std::string& text) {
    char* quoted = PQescapeLiteral(conn, text.c_str(), text.size());
    std::string out = quoted ? quoted : "NULL";
    PQfreemem(quoted);
    return out;
}

// psql or a web back end writing straight to Postgres (not through the
// proxy): inserts and edits, each retried until it is acknowledged, so an
// answer lost to a restart is resolved by the retry (ON CONFLICT, or the
// same edit again).
void write_to_postgres(const std::string& conninfo, std::uint64_t seed,
                       const std::atomic<bool>& stop, Acknowledged& out, std::mutex& mutex) {
    std::mt19937_64 rng(seed);
    Connection conn = connect_pg(conninfo);
    std::vector<std::string> mine;
    for (int n = 0; !stop; ++n) {
        const bool edit = !mine.empty() && rng() % 100 < 30;
        const std::string source_id = edit ? mine[rng() % mine.size()] : "pg-" + std::to_string(n);
        const std::string content =
            (edit ? "edited in psql at op " : "typed into psql, number ") + std::to_string(n);
        for (int attempt = 0;; ++attempt) {
            if (PQstatus(conn.get()) != CONNECTION_OK) {
                std::this_thread::sleep_for(200ms);
                conn = connect_pg(conninfo);
                continue;
            }
            const std::string sql =
                edit ? "UPDATE lestash.items SET content = " + literal(conn.get(), content) +
                           " WHERE source_type = 'note' AND source_id = " +
                           literal(conn.get(), source_id)
                     : "INSERT INTO lestash.items (id, source_type, source_id, title, content) "
                       "VALUES (gen_random_uuid(), 'note', " +
                           literal(conn.get(), source_id) + ", 'from psql', " +
                           literal(conn.get(), content) + ") ON CONFLICT DO NOTHING";
            if (run(conn.get(), sql))
                break;
            if (stop && attempt >= 100)
                return;  // Postgres stays away: the test is failing anyway
            PQreset(conn.get());
            std::lock_guard<std::mutex> lock(mutex);
            ++out.errors;
        }
        if (!edit)
            mine.push_back(source_id);
        std::lock_guard<std::mutex> lock(mutex);
        out.items[source_id] = content;
        ++out.operations;
        out.updates += edit ? 1 : 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));
    }
}

// A bulk loader on the same bad network as the daemons: BEGIN, COPY a batch
// of rows in several CopyData messages, COMMIT. A batch is acknowledged when
// COMMIT answers; any other must turn out all there or not there at all.
struct CopyBatches {
    std::vector<std::vector<std::string>> acknowledged, unacknowledged;  // source_ids
};

void copy_through_proxy(const std::string& conninfo, std::uint64_t seed,
                        const std::atomic<bool>& stop, CopyBatches& out, std::mutex& mutex) {
    std::mt19937_64 rng(seed);
    Connection conn(nullptr, &PQfinish);
    for (int batch = 0; !stop; ++batch) {
        if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
            conn = connect_pg(conninfo);
            if (PQstatus(conn.get()) != CONNECTION_OK) {
                std::this_thread::sleep_for(200ms);
                --batch;
                continue;
            }
        }
        std::vector<std::string> ids;
        bool ok = run(conn.get(), "BEGIN");
        if (ok) {
            std::unique_ptr<PGresult, decltype(&PQclear)> r(
                PQexec(
                    conn.get(),
                    "COPY lestash.items (id, source_type, source_id, title, content) FROM STDIN"),
                &PQclear);
            ok = PQresultStatus(r.get()) == PGRES_COPY_IN;
        }
        const int rows = 20 + static_cast<int>(rng() % 60);
        for (int i = 0; ok && i < rows; ++i) {
            ids.push_back("copy-" + std::to_string(batch) + "-" + std::to_string(i));
            const std::string line = random_uuid() + "\tnote\t" + ids.back() +
                                     "\tbulk\tloaded by COPY " +
                                     std::string(50 + rng() % 200, 'c') + "\n";
            ok = PQputCopyData(conn.get(), line.data(), static_cast<int>(line.size())) == 1;
        }
        if (ok)
            ok = PQputCopyEnd(conn.get(), nullptr) == 1;
        if (ok) {
            std::unique_ptr<PGresult, decltype(&PQclear)> r(PQgetResult(conn.get()), &PQclear);
            ok = PQresultStatus(r.get()) == PGRES_COMMAND_OK;
            while (PGresult* more = PQgetResult(conn.get())) PQclear(more);
        }
        ok = ok && run(conn.get(), "COMMIT");
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!ids.empty())
                (ok ? out.acknowledged : out.unacknowledged).push_back(ids);
        }
        if (!ok) {
            conn.reset();  // whatever state it is in
            std::this_thread::sleep_for(100ms);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 300));
        }
    }
}

// source_id -> (how many rows, the content of one of them)
using ItemsSeen = std::map<std::string, std::pair<int, std::string>>;

ItemsSeen postgres_items(const std::string& conninfo) {
    ItemsSeen out;
    pqxx::connection c(conninfo);
    pqxx::nontransaction q(c);
    for (const auto& r :
         q.exec("SELECT source_id, content FROM lestash.items WHERE source_id IS NOT NULL")) {
        auto& [n, content] = out[r[0].as<std::string>()];
        ++n;
        content = r[1].as<std::string>();
    }
    return out;
}

std::set<std::pair<std::string, std::string>> postgres_tags(const std::string& conninfo) {
    std::set<std::pair<std::string, std::string>> out;
    pqxx::connection c(conninfo);
    pqxx::nontransaction q(c);
    for (const auto& r : q.exec("SELECT i.source_id, t.name FROM lestash.item_tags it JOIN "
                                "lestash.items i ON i.id = it.item_id JOIN lestash.tags t ON t.id "
                                "= it.tag_id"))
        out.insert({r[0].as<std::string>(), r[1].as<std::string>()});
    return out;
}

ItemsSeen replica_items(const std::string& db_path) {
    ItemsSeen out;
    sqlite::Connection db(db_path, SQLITE_OPEN_READONLY);
    sqlite::Statement st(db, "SELECT source_id, content FROM items WHERE source_id IS NOT NULL");
    while (st.step()) {
        auto& [n, content] = out[st.text(0)];
        ++n;
        content = st.text(1);
    }
    return out;
}

std::set<std::pair<std::string, std::string>> replica_tags(const std::string& db_path) {
    std::set<std::pair<std::string, std::string>> out;
    sqlite::Connection db(db_path, SQLITE_OPEN_READONLY);
    sqlite::Statement st(db,
                         "SELECT i.source_id, t.name FROM item_tags it JOIN items i ON i.id = "
                         "it.item_id JOIN tags t ON t.id = it.tag_id");
    while (st.step()) out.insert({st.text(0), st.text(1)});
    return out;
}

json status_of(const std::string& socket) {
    try {
        ControlClient c(socket);
        return c.call("status", json::object(), {}, 10s);
    } catch (const std::exception& e) {
        return {{"state", "unreachable"}, {"detail", e.what()}};
    }
}

std::int64_t count_in(const std::string& db_path, const std::string& sql) {
    sqlite::Connection db(db_path, SQLITE_OPEN_READONLY);
    db.exec("PRAGMA busy_timeout = 5000");
    return db.query_int(sql);
}

}  // namespace

// Regression: a connection cut after libpq had connected but during the
// session's SET statements escaped as a libpqxx exception, which the worker
// thread did not catch: the daemon aborted (SIGABRT, exit 134).
TEST_CASE("a connection cut at any byte of connecting is an UpstreamError, never a crash",
          "[network][faults]") {
    const auto up = fresh_upstream();
    FaultProxy proxy("127.0.0.1", static_cast<std::uint16_t>(shared_postgres().port()), 17);
    const auto conninfo = up.daemon_conninfo + " " + proxy.host_port_conninfo();
    { Upstream once(conninfo); }
    const auto whole = proxy.stats().bytes_up + proxy.stats().bytes_down;
    int failed = 0, in_setup = 0;
    for (int i = 0; i < 60; ++i) {
        proxy.cut_at_random_offset(whole, 1);  // the next connection, somewhere in it
        try {
            Upstream u(conninfo);
        } catch (const UpstreamError& e) {  // anything else fails the test
            ++failed;
            in_setup += std::string(e.what()).find("setting up the session") != std::string::npos;
        }
    }
    INFO(failed << " of 60 connections failed, " << in_setup << " while setting up");
    std::cout << "connection cuts: " << failed << " of 60 failed, " << in_setup
              << " while setting up" << std::endl;
    CHECK(failed > 0);
    CHECK(in_setup > 0);
}

TEST_CASE("cuts, stalls, refusals, a blackhole and Postgres restarts lose and duplicate nothing",
          "[network][faults][chaos]") {
    const auto t0 = Clock::now();
    const std::uint64_t seed = seed_from_env();
    std::cout << "network fault test: seed " << seed << " (replay: LESTASH_FAULT_SEED=" << seed
              << ")" << std::endl;
    INFO("seed " << seed << " (replay: LESTASH_FAULT_SEED=" << seed << ")");
    std::mt19937_64 rng(seed);
    const auto random_seconds = std::chrono::seconds(seconds_from_env("LESTASH_FAULT_SECONDS", 20));

    auto& pg = shared_postgres();
    const auto up = fresh_upstream();
    FaultProxy proxy("127.0.0.1", static_cast<std::uint16_t>(pg.port()), rng());
    TempDir dir;
    // Short waits so the run stays short; the defaults (60 s, 60 s) are the same code.
    constexpr int kResponseTimeout = 3;
    std::ofstream(dir.file("sync.toml"))
        << "[postgres]\nresponse_timeout_seconds = " << kResponseTimeout
        << "\n[sync]\nmax_backoff_seconds = 2\n";
    const std::string through_proxy = up.daemon_conninfo + " " + proxy.host_port_conninfo();
    const char* level_env = std::getenv("LESTASH_FAULT_LOG_LEVEL");
    const std::string log_level = level_env && *level_env ? level_env : "info";
    auto daemon = [&](const std::string& name) {
        create_lestash_db(dir.file(name + ".db"), 11);
        return std::make_unique<DaemonProcess>(
            std::vector<std::string>{"--config", dir.file("sync.toml"), "--db",
                                     dir.file(name + ".db"), "--postgres", through_proxy,
                                     "--socket", dir.file(name + ".sock"), "--replica", name,
                                     "--log-level", log_level},
            dir.file(name + ".log"));
    };
    const auto a_db = dir.file("a.db"), b_db = dir.file("b.db");
    auto da = daemon("a");
    auto db = daemon("b");
    auto logs = [&] { return "a.log:\n" + da->log() + "\nb.log:\n" + db->log(); };
    // LESTASH_FAULT_KEEP=DIR: on failure, the replicas and logs are copied there.
    auto keep_evidence = [&] {
        const char* keep = std::getenv("LESTASH_FAULT_KEEP");
        if (!keep || !*keep)
            return;
        std::filesystem::create_directories(keep);
        for (const auto& f : std::filesystem::directory_iterator(dir.path()))
            std::filesystem::copy(f.path(), std::filesystem::path(keep) / f.path().filename(),
                                  std::filesystem::copy_options::overwrite_existing);
        std::cout << "evidence kept in " << keep << " (Postgres database " << up.name << ")"
                  << std::endl;
    };
    for (const auto& socket : {dir.file("a.sock"), dir.file("b.sock")})
        REQUIRE(eventually([&] { return status_of(socket)["state"] == "idle"; }));

    // Writers.
    std::atomic<bool> stop_writers{false};
    std::mutex mutex;
    Acknowledged app_a, app_b, direct;
    CopyBatches copies;
    std::vector<std::thread> writers;
    writers.emplace_back(write_like_the_app, a_db, "a-", rng(), std::cref(stop_writers),
                         std::ref(app_a), std::ref(mutex));
    writers.emplace_back(write_like_the_app, b_db, "b-", rng(), std::cref(stop_writers),
                         std::ref(app_b), std::ref(mutex));
    writers.emplace_back(write_to_postgres, up.admin_conninfo, rng(), std::cref(stop_writers),
                         std::ref(direct), std::ref(mutex));
    writers.emplace_back(
        copy_through_proxy,
        up.admin_conninfo + " " + proxy.host_port_conninfo() + " connect_timeout=5", rng(),
        std::cref(stop_writers), std::ref(copies), std::ref(mutex));
    struct StopWriters {
        std::atomic<bool>& stop;
        std::vector<std::thread>& threads;
        FaultProxy& proxy;
        ~StopWriters() {  // also when a REQUIRE fails: lift the faults first
            proxy.set_random_faults(0ms);
            proxy.set_blackhole(false);
            proxy.set_down(false);
            proxy.stall(0ms);
            stop = true;
            for (auto& t : threads)
                if (t.joinable())
                    t.join();
        }
    } stop_guard{stop_writers, writers, proxy};

    // Phase 1: random faults, two Postgres restarts among them. It runs on
    // until cuts have landed inside a COMMIT (with its answer lost) and
    // inside a COPY, or a cap.
    int injected_cut_offsets = 0, injected_cut_all = 0, injected_stalls = 0, injected_down = 0,
        injected_commit_cuts = 0;
    int restarts_fast = 0, restarts_immediate = 0;
    bool daemons_alive = true;
    const auto phase1_start = Clock::now();
    auto restart = [&](const char* mode) {
        pg.stop(mode);
        std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 1500));
        pg.start();
    };
    for (;;) {
        const auto elapsed = Clock::now() - phase1_start;
        const auto s = proxy.stats();
        const bool hit_all = s.cuts_in_copy > 0 && s.cuts_commit_in_doubt > 0;
        if (elapsed > random_seconds && (hit_all || elapsed > 3 * random_seconds))
            break;
        if (restarts_fast == 0 && elapsed > random_seconds / 3) {
            restart("fast");
            ++restarts_fast;
        } else if (restarts_immediate == 0 && elapsed > 2 * random_seconds / 3) {
            restart("immediate");
            ++restarts_immediate;
        }
        const auto dice = rng() % 100;
        if (dice < 50) {
            // Small bounds land inside single messages; larger ones inside a COPY.
            static constexpr std::uint64_t bounds[] = {16, 64, 256, 1024, 4096, 16384};
            proxy.cut_at_random_offset(bounds[rng() % std::size(bounds)], 2);
            ++injected_cut_offsets;
        } else if (dice < 60) {
            proxy.cut_all();
            ++injected_cut_all;
        } else if (dice < 80) {
            proxy.stall(std::chrono::milliseconds(100 + rng() % 1400));
            ++injected_stalls;
        } else if (dice < 88) {
            proxy.set_down(true);
            std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 1800));
            proxy.set_down(false);
            ++injected_down;
        } else if (dice < 94) {
            // The next COMMIT through the proxy, cut once Postgres has it:
            // committed, and the client cannot know (random cuts rarely
            // land in that window on loopback).
            proxy.cut_after_commits(1);
            ++injected_commit_cuts;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 500));
        daemons_alive = daemons_alive && da->running() && db->running();
        if (!daemons_alive)
            break;
    }
    const auto phase1 = Clock::now() - phase1_start;
    std::cout << "  random faults over after " << std::chrono::duration<double>(phase1).count()
              << " s: " << proxy.stats().cuts << " cuts" << std::endl;
    if (!daemons_alive) {
        UNSCOPED_INFO(logs());
        for (auto* d : {da.get(), db.get()})
            if (!d->running())
                UNSCOPED_INFO("daemon " << d->pid() << " exited with status " << d->wait(1s));
    }
    REQUIRE(daemons_alive);

    // Phase 2: a blackhole longer than the daemons wait. First both are
    // connected and idle, so each has a live connection to lose; the app
    // writers keep them sending requests into it. Each must notice by
    // itself: drop the connection that gets no answer (response timeout),
    // go offline, and have its reconnects time out (connect_timeout, which
    // the daemon adds), all while the blackhole lasts.
    proxy.stall(0ms);
    for (const auto& socket : {dir.file("a.sock"), dir.file("b.sock")})
        REQUIRE(eventually(
            [&] {
                const auto st = status_of(socket);
                return st["state"] == "idle" && st["postgres"]["connected"] == true;
            },
            120s));
    const auto blackhole_start = Clock::now();
    proxy.set_blackhole(true);
    std::map<std::string, double> noticed_after;  // seconds until offline
    auto offline_by_itself = [&](const std::string& name) {
        return eventually(
            [&] {
                const auto st = status_of(dir.file(name + ".sock"));
                if (st["state"] != "offline")
                    return false;
                noticed_after[name] =
                    std::chrono::duration<double>(Clock::now() - blackhole_start).count();
                return true;
            },
            60s);
    };
    const bool a_offline = offline_by_itself("a"), b_offline = offline_by_itself("b");
    // The reconnect attempts that follow die of connect_timeout, not of the blackhole lifting.
    auto connect_timed_out = [&](DaemonProcess& d) {
        return eventually([&] { return d.log().find("timeout expired") != std::string::npos; },
                          60s);
    };
    const bool a_timed_out = connect_timed_out(*da), b_timed_out = connect_timed_out(*db);
    const auto blackhole = Clock::now() - blackhole_start;
    proxy.set_blackhole(false);
    std::cout << "  blackhole lifted after " << std::chrono::duration<double>(blackhole).count()
              << " s" << std::endl;
    if (!(a_offline && b_offline && a_timed_out && b_timed_out)) {
        // First, short, on stdout: a CI report may keep only the head and tail.
        for (const auto& [name, d] : {std::pair{"a", da.get()}, std::pair{"b", db.get()}})
            std::cout << "  " << name << ": status "
                      << status_of(dir.file(std::string(name) + ".sock")) << "\n  " << name
                      << ".log, last lines:\n"
                      << d->log_tail(25) << std::endl;
        UNSCOPED_INFO(logs());
    }
    CHECK(a_offline);
    CHECK(b_offline);
    CHECK(a_timed_out);
    CHECK(b_timed_out);
    CHECK(da->log().find("no answer from Postgres") != std::string::npos);
    CHECK(db->log().find("no answer from Postgres") != std::string::npos);

    // Quiet: writers stop, the daemons catch up.
    std::this_thread::sleep_for(2s);  // writes while the daemons come back
    stop_writers = true;
    for (auto& t : writers) t.join();
    for (int round = 0; round < 2; ++round)
        for (const auto& socket : {dir.file("a.sock"), dir.file("b.sock")}) {
            ControlClient c(socket);
            const auto r = c.call("sync.now", {{"wait", true}, {"timeout_ms", 120000}}, {}, 150s);
            REQUIRE(r["caught_up"] == true);
        }
    const bool settled = eventually(
        [&] {
            const auto pg_count = postgres_items(up.admin_conninfo).size();
            return replica_items(a_db).size() == pg_count && replica_items(b_db).size() == pg_count;
        },
        120s);
    if (!settled) {
        const auto in_pg = postgres_items(up.admin_conninfo);
        for (const auto& path : {a_db, b_db}) {
            const auto local = replica_items(path);
            std::string missing, extra;
            for (const auto& [id, seen] : in_pg)
                if (!local.count(id) && missing.size() < 400)
                    missing += id + " ";
            for (const auto& [id, seen] : local)
                if (!in_pg.count(id) && extra.size() < 400)
                    extra += id + " ";
            UNSCOPED_INFO(path << ": " << local.size() << " items, Postgres " << in_pg.size()
                               << "; missing: " << missing << "; not in Postgres: " << extra);
        }
        UNSCOPED_INFO(logs());
        keep_evidence();
    }
    REQUIRE(settled);
    for (const auto& socket : {dir.file("a.sock"), dir.file("b.sock")}) {
        ControlClient c(socket);
        const auto report = c.call("verify", {{"repair", false}}, {}, 120s);
        INFO(socket << ": " << report.dump());
        CHECK(report["matches"] == true);
    }
    CHECK(da->running());
    CHECK(db->running());
    for (auto* d : {da.get(), db.get()}) {
        const int status = d->stop(SIGTERM);
        if (status != 0) {  // the end of its log says why (a sanitizer report...)
            const auto log = d->log();
            UNSCOPED_INFO("log of daemon "
                          << d->pid() << " ends:\n"
                          << log.substr(log.size() - std::min<size_t>(log.size(), 12000)));
        }
        CHECK(status == 0);
    }

    // Every acknowledged write, exactly once, everywhere.
    const auto in_pg = postgres_items(up.admin_conninfo);
    const std::map<std::string, ItemsSeen> stores = {{"postgres", in_pg},
                                                     {"replica a", replica_items(a_db)},
                                                     {"replica b", replica_items(b_db)}};
    const std::map<std::string, std::set<std::pair<std::string, std::string>>> tag_stores = {
        {"postgres", postgres_tags(up.admin_conninfo)},
        {"replica a", replica_tags(a_db)},
        {"replica b", replica_tags(b_db)}};
    int lost = 0, duplicated = 0, stale = 0, resurrected = 0, tags_lost = 0, torn_batches = 0;
    for (const auto& [store, items] : stores) {
        INFO(store);
        for (const auto& [source_id, seen] : items) duplicated += seen.first > 1 ? 1 : 0;
        for (const Acknowledged* writer : {&app_a, &app_b, &direct}) {
            for (const auto& [source_id, content] : writer->items) {
                const auto it = items.find(source_id);
                if (it == items.end()) {
                    ++lost;
                    UNSCOPED_INFO("lost in " << store << ": " << source_id);
                } else if (it->second.second != content) {
                    ++stale;
                    UNSCOPED_INFO("stale in " << store << ": " << source_id);
                }
            }
            for (const auto& source_id : writer->deleted) resurrected += items.count(source_id);
            for (const auto& link : writer->tags)
                tags_lost += tag_stores.at(store).count(link) ? 0 : 1;
        }
        for (const auto& batch : copies.acknowledged)
            for (const auto& source_id : batch) lost += items.count(source_id) ? 0 : 1;
        for (const auto& batch : copies.unacknowledged) {
            std::size_t present = 0;
            for (const auto& source_id : batch) present += items.count(source_id);
            torn_batches += present != 0 && present != batch.size() ? 1 : 0;
        }
        // What Postgres has, each replica has (COPY batches in doubt included).
        if (store != "postgres")
            for (const auto& [source_id, seen] : in_pg) lost += items.count(source_id) ? 0 : 1;
    }
    CHECK(lost == 0);
    CHECK(duplicated == 0);
    CHECK(stale == 0);
    CHECK(resurrected == 0);
    CHECK(tags_lost == 0);
    CHECK(torn_batches == 0);
    INFO("app a: " << app_a.first_error << "\napp b: " << app_b.first_error);
    CHECK(app_a.errors == 0);  // the app never saw an error
    CHECK(app_b.errors == 0);
    for (const auto& path : {a_db, b_db}) {
        CHECK(count_in(path, "SELECT count(*) FROM _lestash_sync_dead_letters") == 0);
        TestReplica r(path, up.daemon_conninfo);  // straight to Postgres, not through the proxy
        require_converged(r);                     // verify, FTS5 integrity-check, outbox empty
    }

    const auto s = proxy.stats();
    CHECK(s.cuts_in_copy > 0);  // the run went on until these had happened
    CHECK(s.cuts_commit_in_doubt > 0);
    const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
    std::size_t copy_rows = 0, copy_rows_unacked = 0;
    for (const auto& b : copies.acknowledged) copy_rows += b.size();
    for (const auto& b : copies.unacknowledged) copy_rows_unacked += b.size();
    std::cout << "network fault test (seed " << seed << "), " << seconds(Clock::now() - t0)
              << " s in all: random faults " << seconds(phase1) << " s, blackhole "
              << seconds(blackhole) << " s\n"
              << "  writes acknowledged: app a " << app_a.operations << " (" << app_a.updates
              << " edits, " << app_a.deletes << " deletes), app b " << app_b.operations << " ("
              << app_b.updates << " edits, " << app_b.deletes << " deletes), psql "
              << direct.operations << " (" << direct.errors << " retried), COPY "
              << copies.acknowledged.size() << " batches / " << copy_rows << " rows; "
              << copies.unacknowledged.size() << " batches (" << copy_rows_unacked
              << " rows) unacknowledged, none torn\n"
              << "  injected: " << injected_cut_offsets << " cuts at random offsets (x2 conns), "
              << injected_cut_all << " cut-alls, " << injected_stalls << " stalls, "
              << injected_down << " down periods, " << injected_commit_cuts
              << " cuts after a COMMIT, 1 blackhole, Postgres restarts: " << restarts_fast
              << " fast, " << restarts_immediate << " immediate\n"
              << "  proxy: " << s.connections << " connections, " << s.cuts << " cut ("
              << s.cuts_in_copy << " inside a COPY, " << s.cuts_in_commit
              << " inside a COMMIT, of which " << s.cuts_commit_in_doubt
              << " after the COMMIT reached Postgres), " << s.stalls << " stalls, " << s.refused
              << " refused\n"
              << "  blackhole noticed (offline) after: a " << noticed_after["a"] << " s, b "
              << noticed_after["b"] << " s (response timeout " << kResponseTimeout << " s)\n"
              << "  rows in Postgres at the end: " << in_pg.size() << "; lost " << lost
              << ", duplicated " << duplicated << ", stale " << stale << ", resurrected "
              << resurrected << ", tags lost " << tags_lost << ", torn COPY batches "
              << torn_batches << std::endl;
}

}  // namespace lestash::test
