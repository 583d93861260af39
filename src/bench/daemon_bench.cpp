// Two real lestash-syncd processes, A and B, on one private Postgres, timed
// from the outside the way a user would see them (see daemon_bench.hpp).
// The bench writes to A's database as the Le Stash CLI does (AppWriter, the
// tests' replay of its write patterns), watches B's database for the rows,
// and reads the daemons' counters from /proc.
#include "daemon_bench.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "app_writer.hpp"
#include "bench_common.hpp"
#include "lestash_sync/common/child_process.hpp"
#include "lestash_sync/common/proc.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/outbox.hpp"
#include "lestash_sync/upstream/local_postgres.hpp"
#include "lestash_sync/upstream/upstream.hpp"
#include "sync_bench.hpp"
#include "syncd_process.hpp"

namespace lestash::bench {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using test::AppWriter;
using test::ItemFields;

namespace {

constexpr int kPauseMinMs = 20, kPauseMaxMs = 120;

double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

// Context switches of all the process's threads (each one is a wakeup or a
// preemption) and its CPU time, user plus system.
struct ProcessCounters {
    std::int64_t context_switches = 0;
    double cpu_ms = 0;
};

ProcessCounters counters_of(pid_t pid) {
    ProcessCounters c;
    c.context_switches = proc::context_switches(pid);
    c.cpu_ms = proc::cpu_ms(pid);
    return c;
}

// ---- Waiting on B ----

// Wakes when something is written under a directory (inotify): how the
// bench notices B's commits without a busy loop.
class DirectoryWatch {
  public:
    explicit DirectoryWatch(const std::vector<fs::path>& dirs)
        : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
        for (const auto& dir : dirs)
            if (fd_ < 0 ||
                ::inotify_add_watch(fd_, dir.c_str(),
                                    IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
                throw std::runtime_error("cannot watch " + dir.string() + ": " +
                                         std::strerror(errno));
    }
    explicit DirectoryWatch(const fs::path& dir) : DirectoryWatch(std::vector<fs::path>{dir}) {}
    ~DirectoryWatch() { ::close(fd_); }
    DirectoryWatch(const DirectoryWatch&) = delete;
    DirectoryWatch& operator=(const DirectoryWatch&) = delete;

    // True when something was written within `timeout`; drains the events.
    bool wait(std::chrono::microseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        const timespec ts{static_cast<time_t>(timeout.count() / 1000000),
                          static_cast<long>(timeout.count() % 1000000) * 1000};
        if (::ppoll(&p, 1, &ts, nullptr) <= 0)
            return false;
        alignas(inotify_event) char buf[4096];
        while (::read(fd_, buf, sizeof buf) > 0) {
        }
        return true;
    }

  private:
    int fd_;
};

// ---- Postgres for the raw baselines ----

using PgResult = std::unique_ptr<PGresult, decltype(&PQclear)>;

// One libpq connection, autocommit; raises with the statement on failure.
class PgConnection {
  public:
    explicit PgConnection(const std::string& conninfo)
        : conn_(PQconnectdb(conninfo.c_str()), &PQfinish) {
        if (PQstatus(conn_.get()) != CONNECTION_OK)
            throw std::runtime_error(std::string("cannot connect to Postgres: ") +
                                     PQerrorMessage(conn_.get()));
    }
    void exec(const std::string& sql) { check(PQexec(conn_.get(), sql.c_str()), sql); }
    void exec(const std::string& sql, const std::vector<std::string>& params) {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p.c_str());
        check(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.data(), nullptr, nullptr, 0),
              sql);
    }
    // The first column of the first row, as a number.
    std::int64_t query_int(const std::string& sql) {
        const PgResult res(PQexec(conn_.get(), sql.c_str()), &PQclear);
        if (PQresultStatus(res.get()) != PGRES_TUPLES_OK || PQntuples(res.get()) < 1)
            fail(sql);
        return std::stoll(PQgetvalue(res.get(), 0, 0));
    }
    // Waits for a notification carrying `payload` (others are dropped).
    void await_notification(const std::string& payload, Clock::time_point deadline) {
        for (;;) {
            if (!PQconsumeInput(conn_.get()))
                fail("waiting for a notification");
            bool found = false;
            while (PGnotify* n = PQnotifies(conn_.get())) {
                found |= payload == n->extra;
                PQfreemem(n);
            }
            if (found)
                return;
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0)
                throw std::runtime_error("no notification " + payload +
                                         " from Postgres within the deadline");
            pollfd p{PQsocket(conn_.get()), POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(left.count()) + 1);
        }
    }
    // COPY ... FROM STDIN with `data` in text format.
    void copy_in(const std::string& sql, const std::string& data) {
        expect(PQexec(conn_.get(), sql.c_str()), PGRES_COPY_IN, sql);
        if (PQputCopyData(conn_.get(), data.data(), static_cast<int>(data.size())) != 1 ||
            PQputCopyEnd(conn_.get(), nullptr) != 1)
            fail(sql);
        finish(sql);
    }
    // COPY ... TO STDOUT; returns the bytes received.
    std::size_t copy_out(const std::string& sql) {
        expect(PQexec(conn_.get(), sql.c_str()), PGRES_COPY_OUT, sql);
        std::size_t bytes = 0;
        char* row = nullptr;
        int n;
        while ((n = PQgetCopyData(conn_.get(), &row, 0)) > 0) {
            bytes += static_cast<std::size_t>(n);
            PQfreemem(row);
        }
        if (n == -2)
            fail(sql);
        finish(sql);
        return bytes;
    }

  private:
    [[noreturn]] void fail(const std::string& doing) const {
        throw std::runtime_error("Postgres: " + std::string(PQerrorMessage(conn_.get())) + " (" +
                                 doing.substr(0, 120) + ")");
    }
    void expect(PGresult* raw, ExecStatusType wanted, const std::string& sql) const {
        const PgResult res(raw, &PQclear);
        if (PQresultStatus(res.get()) != wanted)
            fail(sql);
    }
    void check(PGresult* raw, const std::string& sql) const {
        const PgResult res(raw, &PQclear);
        const auto st = PQresultStatus(res.get());
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            fail(sql);
    }
    // The result after a COPY, then the end of the results.
    void finish(const std::string& sql) const {
        check(PQgetResult(conn_.get()), sql);
        while (PGresult* extra = PQgetResult(conn_.get())) PQclear(extra);
    }

    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
};

constexpr const char* kRawTable =
    " (id bigserial PRIMARY KEY, source_type text NOT NULL, source_id text, title text, "
    "content text NOT NULL, UNIQUE (source_type, source_id))";

// ---- The rig ----

// A Le Stash database in its own directory (so a watch on the directory
// sees only its writes) and the daemon syncing it.
struct Peer {
    std::string name;  // a, b, b2, b3, ...: its directory, log and socket
    fs::path db;
    std::unique_ptr<SyncdProcess> daemon;
};

// Everything one run sets up, torn down in reverse order: the daemons
// (stopped by pid) before the Postgres they talk to. A writes; B (and in a
// fan-out run B2 ... Bn) receive.
class Rig {
  public:
    Rig(const fs::path& dir, std::string syncd, int receivers = 1)
        : dir_(dir), syncd_(std::move(syncd)) {
        if (::access(syncd_.c_str(), X_OK) != 0)
            throw std::runtime_error("no lestash-syncd at " + syncd_ +
                                     " — build it (ninja lestash-syncd) or give --syncd");
        std::ofstream(dir_ / "sync.toml").flush();  // no user config: flags only
        peers_.resize(static_cast<size_t>(receivers) + 1);
        for (size_t i = 0; i < peers_.size(); ++i) {
            peers_[i].name = i == 0 ? "a" : i == 1 ? "b" : "b" + std::to_string(i);
            peers_[i].db = new_database(peers_[i].name);
        }
        // Durable (fsync on), as a user's server is; the raw baselines share it.
        postgres_ = std::make_unique<LocalPostgres>(LocalPostgresOptions{"", true, true});
        const std::string upstream = postgres_->create_database("lestash");
        apply_migrations(postgres_->conninfo(upstream));
        postgres_->exec(
            "CREATE ROLE lestash_bench_daemon LOGIN PASSWORD 'bench-pw' IN ROLE lestash_sync");
        daemon_conninfo_ = postgres_->conninfo_as("lestash_bench_daemon", "bench-pw", upstream);
        raw_conninfo_ = postgres_->conninfo(postgres_->create_database("raw"));
    }

    // A fresh v11 database with the capture triggers, made by the daemon.
    fs::path new_database(const std::string& name) {
        fs::create_directories(dir_ / name);
        fs::path db = dir_ / name / "lestash.db";
        SyncdProcess once(
            "lestash-syncd --once (" + name + ")", syncd_,
            {"--config", (dir_ / "sync.toml").string(), "--db", db.string(), "--once"},
            dir_ / (name + "-once.log"));
        if (const int status = once.wait_exit(60s); status != 0)
            throw std::runtime_error(once.name() + " failed (" + std::to_string(status) + "):\n" +
                                     once.log_tail());
        return db;
    }

    void start_daemons() {
        for (auto& r : peers_)
            r.daemon = std::make_unique<SyncdProcess>(
                "lestash-syncd " + r.name, syncd_,
                std::vector<std::string>{"--config", (dir_ / "sync.toml").string(), "--db",
                                         r.db.string(), "--postgres", daemon_conninfo_, "--socket",
                                         (dir_ / (r.name + ".sock")).string(), "--replica",
                                         "bench-" + r.name, "--log-level", "debug"},
                dir_ / (r.name + ".log"));
        wait_until("every daemon to finish its first sync cycle", 60s + 5s * peers_.size(), [&] {
            return std::all_of(peers_.begin(), peers_.end(), [](const Peer& r) {
                return r.daemon->log().find("sync (start)") != std::string::npos;
            });
        });
    }

    // Raises with where the rows are and the tail of each daemon's log.
    [[noreturn]] void fail(const std::string& what) const {
        std::string message = what + "\n" + where_the_rows_are();
        for (const auto& r : peers_)
            if (r.daemon)
                message += "\n--- " + r.daemon->name() + " (" + r.daemon->log_path().string() +
                           ") ---\n" + r.daemon->log_tail();
        throw std::runtime_error(message);
    }
    void require_running() {
        for (auto& r : peers_)
            if (r.daemon && !r.daemon->running())
                fail(r.daemon->name() + " exited (status " +
                     std::to_string(r.daemon->exit_status().value_or(-1)) + ")");
    }
    // Stops every daemon as systemd would (SIGTERM); their exit statuses,
    // -1 for one that had to be killed.
    json stop_daemons() {
        json statuses;
        for (auto& r : peers_) statuses[r.name] = r.daemon->stop().value_or(-1);
        return statuses;
    }
    // Checks `condition` every 50 ms until it holds.
    void wait_until(const std::string& what, std::chrono::seconds timeout,
                    const std::function<bool()>& condition) {
        const auto end = Clock::now() + timeout;
        while (!condition()) {
            require_running();
            if (Clock::now() > end)
                fail("gave up waiting " + std::to_string(timeout.count()) + " s for " + what);
            std::this_thread::sleep_for(50ms);
        }
    }
    // Checks `on_b` whenever B's directory is written, and every
    // `after_write` for 20 ms after such a write (SQLite publishes a commit
    // in the -shm index, which is mapped memory, after its last -wal
    // write); a 50 ms tick catches anything else. Returns when it held.
    Clock::time_point wait_on_b(const std::string& what, Clock::duration timeout,
                                DirectoryWatch& watch, std::chrono::microseconds after_write,
                                const std::function<bool()>& on_b) {
        const auto end = Clock::now() + timeout;
        auto hot_until = Clock::time_point::min();
        for (;;) {
            if (on_b())
                return Clock::now();
            const auto now = Clock::now();
            if (now > end)
                fail("gave up waiting " +
                     std::to_string(
                         std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
                     " s for " + what);
            require_running();
            if (watch.wait(now < hot_until ? after_write : std::chrono::microseconds(50ms)))
                hot_until = Clock::now() + 20ms;
        }
    }
    // Waits until no daemon used more than 10 ms of CPU over 0.5 s.
    void wait_quiet() {
        auto before = cpu_ms();
        wait_until("the daemons to go idle", 120s, [&] {
            std::this_thread::sleep_for(450ms);
            const auto after = cpu_ms();
            bool quiet = true;
            for (size_t i = 0; i < after.size(); ++i) quiet = quiet && after[i] - before[i] <= 10;
            before = after;
            return quiet;
        });
    }

    json memory() const {
        json m;
        for (const auto& r : peers_) {
            const auto mem = memory_of(r.daemon->pid());
            m[r.name] = {{"rss_mib", mem.rss_mib}, {"peak_rss_mib", mem.peak_rss_mib}};
        }
        return m;
    }

    const fs::path& dir() const { return dir_; }
    const Peer& a() const { return peers_[0]; }
    const Peer& b() const { return peers_[1]; }
    // B, B2, ... Bn.
    std::vector<const Peer*> receivers() const {
        std::vector<const Peer*> out;
        for (size_t i = 1; i < peers_.size(); ++i) out.push_back(&peers_[i]);
        return out;
    }
    const std::string& raw_conninfo() const { return raw_conninfo_; }
    pid_t postgres_pid() const { return postgres_->pid(); }

  private:
    // Items and unpushed outbox entries on each side: did A push, did B pull?
    std::string where_the_rows_are() const {
        std::string out;
        for (const auto& r : peers_) {
            out += (out.empty() ? "" : "; ") + r.name + ": ";
            try {
                sqlite::Connection db(r.db.string(), SQLITE_OPEN_READONLY);
                out += std::to_string(db.query_int("SELECT count(*) FROM items")) + " items, " +
                       std::to_string(Outbox(db).depth()) + " outbox entries";
            } catch (const std::exception& e) {
                out += e.what();
            }
        }
        return out;
    }
    std::vector<double> cpu_ms() const {
        std::vector<double> out;
        for (const auto& r : peers_) out.push_back(counters_of(r.daemon->pid()).cpu_ms);
        return out;
    }

    fs::path dir_;
    std::string syncd_;
    std::unique_ptr<LocalPostgres> postgres_;
    std::string daemon_conninfo_, raw_conninfo_;
    std::vector<Peer> peers_;  // after postgres_: stopped first
};

// ---- Measurements ----

ItemFields note(const std::string& source_id, std::string content) {
    ItemFields item;
    item.source_id = source_id;
    item.title = "Note " + source_id;
    item.content = std::move(content);
    return item;
}

sqlite::Connection open_reader(const fs::path& db) {
    sqlite::Connection c(db.string(), SQLITE_OPEN_READONLY);
    sqlite3_busy_timeout(c.handle(), 5000);
    return c;
}

// The same pauses between writes, in the same order, for ours and raw.
class Pauses {
  public:
    void sleep() { std::this_thread::sleep_for(std::chrono::milliseconds(pick_(rng_))); }

  private:
    std::mt19937 rng_{5};
    std::uniform_int_distribution<int> pick_{kPauseMinMs, kPauseMaxMs};
};

std::string local_time_now() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms));
    return buf;
}

// A's app writes one note at a time as the CLI does (an upsert on its
// natural key in its own transaction, on a connection it keeps open); each
// is timed from the start of the write until B's database has the row. One
// untimed warm-up write first.
std::vector<double> propagation_latencies(Rig& rig, int writes) {
    AppWriter app(rig.a().db.string());
    auto reader = open_reader(rig.b().db);
    sqlite::Statement visible(reader,
                              "SELECT EXISTS (SELECT 1 FROM items WHERE source_type = 'note' "
                              "AND source_id = ?)");
    DirectoryWatch watch(rig.b().db.parent_path());
    ContentGenerator gen(21);
    std::ofstream csv(rig.dir() / "latency.csv");
    csv << "write,written_at,latency_ms\n";
    auto timed_write = [&](const std::string& id) {
        const auto item = note(id, gen.next());
        const auto t0 = Clock::now();
        app.upsert_item(item);
        const auto seen = rig.wait_on_b(id + " to reach B", 30s, watch, 100us, [&] {
            visible.bind_all(id);
            const bool there = visible.step() && visible.integer(0) != 0;
            visible.reset();  // ends the read transaction
            return there;
        });
        return ms_between(t0, seen);
    };
    timed_write("warmup");
    Pauses pauses;
    std::vector<double> ms;
    for (int i = 0; i < writes; ++i) {
        pauses.sleep();
        const std::string at = local_time_now();
        ms.push_back(timed_write("latency-" + std::to_string(i)));
        csv << i << "," << at << "," << ms.back() << "\n";
    }
    return ms;
}

// The floor for any Postgres-based sync: the same notes INSERTed into a
// plain table `table`, autocommit, by a statement that also NOTIFYs; timed
// from before the INSERT until the last of `listeners` other connections
// LISTENing has the notice.
std::vector<double> raw_notify_latencies(const std::string& conninfo, const std::string& table,
                                         int listeners, int writes) {
    PgConnection writer(conninfo);
    writer.exec("CREATE TABLE " + table + kRawTable);
    std::vector<std::unique_ptr<PgConnection>> listening;
    for (int i = 0; i < listeners; ++i) {
        listening.push_back(std::make_unique<PgConnection>(conninfo));
        listening.back()->exec("LISTEN " + table);
    }
    const std::string insert = "WITH row AS (INSERT INTO " + table +
                               " (source_type, source_id, title, content) VALUES ('note', $1, "
                               "$2, $3) RETURNING source_id) SELECT pg_notify('" +
                               table + "', source_id) FROM row";
    ContentGenerator gen(21);
    auto timed_write = [&](const std::string& id) {
        const auto t0 = Clock::now();
        writer.exec(insert, {id, "Note " + id, gen.next()});
        for (auto& l : listening) l->await_notification(id, Clock::now() + 30s);
        return ms_between(t0, Clock::now());
    };
    timed_write("warmup");
    Pauses pauses;
    std::vector<double> ms;
    for (int i = 0; i < writes; ++i) {
        pauses.sleep();
        ms.push_back(timed_write("latency-" + std::to_string(i)));
    }
    return ms;
}

json percentiles(std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) {  // nearest rank
        const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(ms.size())));
        return ms[std::clamp<size_t>(rank, 1, ms.size()) - 1];
    };
    return {{"p50", at(0.50)}, {"p95", at(0.95)}, {"p99", at(0.99)}, {"max", ms.back()}};
}

// Wakeups and CPU of each daemon while nothing happens for `seconds`.
json idle_cost(Rig& rig, int seconds) {
    rig.wait_quiet();
    // A daemon re-checks the file events of its last cycle for up to 3.6 s
    // (SyncWorker::run); idle starts after that.
    std::this_thread::sleep_for(4s);
    const Peer* replicas[] = {&rig.a(), &rig.b()};
    ProcessCounters before[2];
    std::size_t log_bytes[2];
    for (int i = 0; i < 2; ++i) {
        before[i] = counters_of(replicas[i]->daemon->pid());
        log_bytes[i] = replicas[i]->daemon->log().size();
    }
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::seconds(seconds);
    while (Clock::now() < end) {
        std::this_thread::sleep_until(std::min(end, Clock::now() + 1s));
        rig.require_running();
    }
    const double elapsed = seconds_since(t0);
    json r = {{"seconds", elapsed}};
    for (int i = 0; i < 2; ++i) {
        const auto after = counters_of(replicas[i]->daemon->pid());
        const std::string logged = replicas[i]->daemon->log().substr(log_bytes[i]);
        const auto switches = after.context_switches - before[i].context_switches;
        const double cpu_ms = after.cpu_ms - before[i].cpu_ms;
        r[i == 0 ? "a" : "b"] = {
            {"context_switches", switches},
            {"wakeups_per_min", static_cast<double>(switches) * 60.0 / elapsed},
            {"cpu_ms", cpu_ms},
            {"cpu_ms_per_min", cpu_ms * 60.0 / elapsed},
            {"cpu_percent_of_core", cpu_ms / (elapsed * 1000.0) * 100.0},
            {"log_lines", std::count(logged.begin(), logged.end(), '\n')},
        };
    }
    return r;
}

// Notes of 200 bytes to 4 KB of prose, deterministic.
std::vector<ItemFields> make_bulk_notes(int n) {
    ContentGenerator gen(31);
    std::mt19937 rng(32);
    std::uniform_int_distribution<size_t> length(200, 4096);
    std::vector<ItemFields> notes;
    notes.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        const size_t target = length(rng);
        std::string text = gen.next();
        while (text.size() < target) text += gen.next();
        const auto cut = text.rfind(' ', target);
        text.resize(cut == std::string::npos ? target : cut);
        notes.push_back(note("bulk-" + std::to_string(i), std::move(text)));
    }
    return notes;
}

// A's app writes every note in one transaction; seconds from its COMMIT
// until B has them all.
double bulk_propagation_seconds(Rig& rig, const std::vector<ItemFields>& notes) {
    AppWriter app(rig.a().db.string());
    auto reader = open_reader(rig.b().db);
    const auto expected =
        reader.query_int("SELECT count(*) FROM items") + static_cast<std::int64_t>(notes.size());
    sqlite::Statement last(reader,
                           "SELECT EXISTS (SELECT 1 FROM items WHERE source_type = "
                           "'note' AND source_id = ?)");
    DirectoryWatch watch(rig.b().db.parent_path());
    Clock::time_point t0;
    app.insert_items(notes, [&] { t0 = Clock::now(); });
    // The last note first (cheap), then the full count.
    const auto timeout = 60s + std::chrono::milliseconds(20 * static_cast<long>(notes.size()));
    const auto seen = rig.wait_on_b(
        "all " + std::to_string(notes.size()) + " bulk notes to reach B", timeout, watch, 2ms, [&] {
            last.bind_all(*notes.back().source_id);
            const bool there = last.step() && last.integer(0) != 0;
            last.reset();
            return there && reader.query_int("SELECT count(*) FROM items") == expected;
        });
    return std::chrono::duration<double>(seen - t0).count();
}

std::string copy_escaped(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// The floor for moving the same notes from one SQLite database to another
// through Postgres: COPY into a plain table, COPY them out again, and insert
// them into a v11 database without capture triggers in one transaction.
json raw_bulk(Rig& rig, const std::vector<ItemFields>& notes) {
    PgConnection pg(rig.raw_conninfo());
    pg.exec(std::string("CREATE TABLE raw_bulk") + kRawTable);
    std::string rows;
    for (const auto& n : notes)
        rows += "note\t" + copy_escaped(*n.source_id) + "\t" + copy_escaped(*n.title) + "\t" +
                copy_escaped(n.content) + "\n";
    auto t0 = Clock::now();
    pg.copy_in("COPY raw_bulk (source_type, source_id, title, content) FROM STDIN", rows);
    const double copy_in_s = seconds_since(t0);
    t0 = Clock::now();
    pg.copy_out("COPY raw_bulk (source_type, source_id, title, content) TO STDOUT");
    const double copy_out_s = seconds_since(t0);

    AppWriter app(rig.new_database("raw").string());
    drop_capture_triggers(app.db());
    t0 = Clock::now();
    app.insert_items(notes);
    const double sqlite_s = seconds_since(t0);
    return {{"postgres_copy_in_seconds", copy_in_s},
            {"postgres_copy_out_seconds", copy_out_s},
            {"sqlite_insert_seconds", sqlite_s},
            {"seconds", copy_in_s + copy_out_s + sqlite_s}};
}

// ---- Fan-out ----

// Per write on A, from the start of the write: when the last of the
// receivers had the row, and the median receiver.
struct FanoutTimes {
    std::vector<double> last_ms, median_ms;
};

FanoutTimes fanout_latencies(Rig& rig, int writes) {
    AppWriter app(rig.a().db.string());
    const auto receivers = rig.receivers();
    std::vector<sqlite::Connection> readers;
    std::vector<fs::path> dirs;
    readers.reserve(receivers.size());
    dirs.reserve(receivers.size());
    for (const auto* r : receivers) {
        readers.push_back(open_reader(r->db));
        dirs.push_back(r->db.parent_path());
    }
    std::vector<sqlite::Statement> visible;  // each on its reader, which stays where it is
    visible.reserve(readers.size());
    for (auto& reader : readers)
        visible.emplace_back(reader,
                             "SELECT EXISTS (SELECT 1 FROM items WHERE source_type = 'note' AND "
                             "source_id = ?)");
    DirectoryWatch watch(dirs);
    ContentGenerator gen(23);
    FanoutTimes out;
    auto timed_write = [&](const std::string& id) {
        const auto item = note(id, gen.next());
        std::vector<std::optional<double>> seen(receivers.size());
        const auto t0 = Clock::now();
        app.upsert_item(item);
        rig.wait_on_b(id + " to reach all " + std::to_string(receivers.size()) + " receivers", 60s,
                      watch, 100us, [&] {
                          bool all = true;
                          for (size_t i = 0; i < receivers.size(); ++i) {
                              if (seen[i])
                                  continue;
                              visible[i].bind_all(id);
                              if (visible[i].step() && visible[i].integer(0) != 0)
                                  seen[i] = ms_between(t0, Clock::now());
                              visible[i].reset();
                              all = all && seen[i].has_value();
                          }
                          return all;
                      });
        std::vector<double> ms;
        ms.reserve(seen.size());
        for (const auto& v : seen) ms.push_back(*v);
        std::sort(ms.begin(), ms.end());
        return std::make_pair(ms.back(), ms[(ms.size() - 1) / 2]);
    };
    timed_write("fanout-warmup");
    Pauses pauses;
    for (int i = 0; i < writes; ++i) {
        pauses.sleep();
        const auto [last, median] = timed_write("fanout-" + std::to_string(i));
        out.last_ms.push_back(last);
        out.median_ms.push_back(median);
    }
    return out;
}

// Connections the daemons hold on the upstream database.
std::int64_t upstream_connections(const Rig& rig) {
    PgConnection admin(rig.raw_conninfo());
    return admin.query_int(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'lestash_bench_daemon'");
}

json one_fanout(const fs::path& dir, const std::string& syncd, int receivers, int writes) {
    fs::create_directories(dir);
    Rig rig(dir, syncd, receivers);
    rig.start_daemons();
    rig.wait_quiet();
    json r = {{"receivers", receivers}, {"writes", writes}};
    r["upstream_connections"] = upstream_connections(rig);

    const auto cpu = [&] {
        double daemons = 0;
        for (const auto* p : rig.receivers()) daemons += proc::cpu_ms(p->daemon->pid());
        return std::make_tuple(proc::tree_cpu_ms(rig.postgres_pid()),
                               proc::cpu_ms(rig.a().daemon->pid()), daemons);
    };
    const auto [pg0, a0, recv0] = cpu();
    const auto ours = fanout_latencies(rig, writes);
    const auto [pg1, a1, recv1] = cpu();
    const auto pg_raw0 = proc::tree_cpu_ms(rig.postgres_pid());
    const auto raw = raw_notify_latencies(rig.raw_conninfo(), "raw_fanout", receivers, writes);
    const auto pg_raw1 = proc::tree_cpu_ms(rig.postgres_pid());

    const auto last = percentiles(ours.last_ms), raw_p = percentiles(raw);
    json ratio;
    for (const char* p : {"p50", "p95", "p99", "max"})
        ratio[p] = last[p].get<double>() / raw_p[p].get<double>();
    // Writes + the warm-up; CPU ms of the whole window, the pauses included.
    const double n = writes + 1;
    r["latency_ms"] = {{"last_receiver", last},
                       {"median_receiver", percentiles(ours.median_ms)},
                       {"raw_postgres_notify_last_listener", raw_p},
                       {"ratio_last", ratio}};
    r["cpu_ms_per_write"] = {{"postgres", (pg1 - pg0) / n},
                             {"postgres_raw", (pg_raw1 - pg_raw0) / n},
                             {"writer_daemon", (a1 - a0) / n},
                             {"receiver_daemons", (recv1 - recv0) / n},
                             {"per_receiver_daemon", (recv1 - recv0) / n / receivers}};
    double peak = 0;
    for (const auto* p : rig.receivers())
        peak = std::max(peak, memory_of(p->daemon->pid()).peak_rss_mib);
    r["receiver_peak_rss_mib_max"] = peak;
    r["exit_status"] = rig.stop_daemons();
    return r;
}

}  // namespace

json bench_fanout(const fs::path& dir, const FanoutBenchOptions& options) {
    const std::string syncd =
        options.syncd_path.empty()
            ? (fs::read_symlink("/proc/self/exe").parent_path() / "lestash-syncd").string()
            : options.syncd_path;
    json runs = json::array();
    for (const int n : options.receivers)
        runs.push_back(one_fanout(dir / ("fanout-" + std::to_string(n)), syncd, n, options.writes));
    return {{"pause_ms", {kPauseMinMs, kPauseMaxMs}}, {"runs", runs}};
}

void print_fanout_table(const json& r) {
    std::printf("fan-out: one note written on A, ms until the last of N running replicas has it\n");
    std::printf("  %4s %6s | %7s %7s %7s | %7s %7s | %9s | %8s %8s %8s %8s\n", "N", "conns", "p50",
                "p95", "p99", "raw p50", "raw p99", "p99/raw", "PG ms/w", "raw ms/w", "A ms/w",
                "recv ms/w");
    for (const auto& run : r["runs"]) {
        const auto& lat = run["latency_ms"];
        const auto& cpu = run["cpu_ms_per_write"];
        std::printf(
            "  %4d %6lld | %7.2f %7.2f %7.2f | %7.2f %7.2f | %9.2f | %8.2f %8.2f %8.2f %8.2f\n",
            run["receivers"].get<int>(),
            static_cast<long long>(run["upstream_connections"].get<std::int64_t>()),
            lat["last_receiver"]["p50"].get<double>(), lat["last_receiver"]["p95"].get<double>(),
            lat["last_receiver"]["p99"].get<double>(),
            lat["raw_postgres_notify_last_listener"]["p50"].get<double>(),
            lat["raw_postgres_notify_last_listener"]["p99"].get<double>(),
            lat["ratio_last"]["p99"].get<double>(), cpu["postgres"].get<double>(),
            cpu["postgres_raw"].get<double>(), cpu["writer_daemon"].get<double>(),
            cpu["per_receiver_daemon"].get<double>());
    }
    std::printf(
        "  (conns: the daemons' Postgres connections; CPU ms per write, over the whole window "
        "with its pauses; the median receiver: --json)\n");
}

json bench_daemon(const fs::path& dir, const DaemonBenchOptions& options) {
    const std::string syncd =
        options.syncd_path.empty()
            ? (fs::read_symlink("/proc/self/exe").parent_path() / "lestash-syncd").string()
            : options.syncd_path;
    Rig rig(dir, syncd);
    rig.start_daemons();
    json r = {{"writes", options.writes}, {"pause_ms", {kPauseMinMs, kPauseMaxMs}}};

    // 1. Propagation latency, ours then raw.
    const auto ours = percentiles(propagation_latencies(rig, options.writes));
    const auto raw =
        percentiles(raw_notify_latencies(rig.raw_conninfo(), "raw_notes", 1, options.writes));
    json ratio;
    for (const char* p : {"p50", "p95", "p99", "max"})
        ratio[p] = ours[p].get<double>() / raw[p].get<double>();
    r["latency_ms"] = {{"ours", ours}, {"raw_postgres_notify", raw}, {"ratio", ratio}};

    // 2. Idle cost; 3. memory after the writes and after the bulk; 4. bulk.
    rig.wait_quiet();
    r["memory_mib"]["after_latency"] = rig.memory();
    r["idle"] = idle_cost(rig, options.idle_seconds);

    const auto notes = make_bulk_notes(options.bulk);
    std::size_t content_bytes = 0;
    for (const auto& n : notes) content_bytes += n.content.size();
    const double bulk_s = bulk_propagation_seconds(rig, notes);
    rig.wait_quiet();
    r["memory_mib"]["after_bulk"] = rig.memory();
    json raw_bulk_r = raw_bulk(rig, notes);
    const double raw_s = raw_bulk_r["seconds"].get<double>();
    raw_bulk_r["rows_per_s"] = options.bulk / raw_s;
    r["bulk"] = {{"items", options.bulk},
                 {"mean_content_bytes",
                  static_cast<double>(content_bytes) / static_cast<double>(notes.size())},
                 {"seconds", bulk_s},
                 {"rows_per_s", options.bulk / bulk_s},
                 {"raw", raw_bulk_r},
                 {"rows_per_s_ratio", raw_s / bulk_s}};
    r["exit_status"] = rig.stop_daemons();
    return r;
}

void print_daemon_table(const json& r) {
    const auto& lat = r["latency_ms"];
    std::printf("propagation A -> B, ms (%d single-note CLI writes on A, %d-%d ms apart)\n",
                r["writes"].get<int>(), kPauseMinMs, kPauseMaxMs);
    std::printf("  %-32s %8s %8s %8s %8s\n", "", "p50", "p95", "p99", "max");
    const std::pair<const char*, const char*> rows[] = {
        {"ours", "lestash-syncd A -> B"},
        {"raw_postgres_notify", "raw INSERT + NOTIFY -> LISTEN"},
        {"ratio", "ratio ours/raw"}};
    for (const auto& [key, label] : rows)
        std::printf("  %-32s %8.2f %8.2f %8.2f %8.2f\n", label, lat[key]["p50"].get<double>(),
                    lat[key]["p95"].get<double>(), lat[key]["p99"].get<double>(),
                    lat[key]["max"].get<double>());

    const auto& idle = r["idle"];
    std::printf("idle %.0f s, nothing changing\n", idle["seconds"].get<double>());
    std::printf("  %-8s %14s %12s %12s %10s\n", "daemon", "wakeups/min", "CPU ms/min",
                "% of a core", "log lines");
    for (const char* d : {"a", "b"})
        std::printf("  %-8s %14.1f %12.1f %12.3f %10lld\n", d == std::string("a") ? "A" : "B",
                    idle[d]["wakeups_per_min"].get<double>(),
                    idle[d]["cpu_ms_per_min"].get<double>(),
                    idle[d]["cpu_percent_of_core"].get<double>(),
                    static_cast<long long>(idle[d]["log_lines"].get<std::int64_t>()));

    std::printf("memory, MiB (RSS / peak RSS)\n");
    for (const char* when : {"after_latency", "after_bulk"}) {
        const auto& m = r["memory_mib"][when];
        std::printf("  %-14s A %6.1f / %6.1f   B %6.1f / %6.1f\n", when,
                    m["a"]["rss_mib"].get<double>(), m["a"]["peak_rss_mib"].get<double>(),
                    m["b"]["rss_mib"].get<double>(), m["b"]["peak_rss_mib"].get<double>());
    }

    const auto& bulk = r["bulk"];
    const auto& raw = bulk["raw"];
    std::printf(
        "bulk: %d notes (%.0f bytes on average) in one transaction on A, commit to all on B\n",
        bulk["items"].get<int>(), bulk["mean_content_bytes"].get<double>());
    std::printf("  %-32s %8s %10s\n", "", "seconds", "rows/s");
    std::printf("  %-32s %8.2f %10.0f\n", "lestash-syncd A -> B", bulk["seconds"].get<double>(),
                bulk["rows_per_s"].get<double>());
    std::printf("  %-32s %8.2f %10.0f\n", "raw COPY in + COPY out + insert",
                raw["seconds"].get<double>(), raw["rows_per_s"].get<double>());
    std::printf("    (COPY in %.2f s, COPY out %.2f s, SQLite insert %.2f s)\n",
                raw["postgres_copy_in_seconds"].get<double>(),
                raw["postgres_copy_out_seconds"].get<double>(),
                raw["sqlite_insert_seconds"].get<double>());
    std::printf("  %-32s %19.3f\n", "rows/s ratio ours/raw",
                bulk["rows_per_s_ratio"].get<double>());
    std::printf("daemons stopped with SIGTERM: exit status A %d, B %d\n",
                r["exit_status"]["a"].get<int>(), r["exit_status"]["b"].get<int>());
}

}  // namespace lestash::bench
