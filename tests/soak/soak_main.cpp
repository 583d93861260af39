// lestash-soak: the crash loop, network, Postgres and SQLite faults of
// issue 7 on real lestash-syncd processes, then the promises checked against
// every write a writer was told had been made. Usage: lestash-soak --help.
//
// Deterministic by seed as far as a multi-process run can be: every random
// choice (operations, contents, fault kinds and times, kill moments, the
// proxy's faults) comes from the seed; thread scheduling does not.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "fault_proxy.hpp"
#include "lestash_sync/common/proc.hpp"
#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/control/control_client.hpp"
#include "lestash_sync/replica/outbox.hpp"
#include "soak.hpp"
#include "temp_dir.hpp"
#include "throwaway_postgres.hpp"

namespace lestash::soak {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::atomic<bool> stop_writers{false};
std::atomic<bool> stop_faults{false};
std::atomic<bool> stop_sampling{false};
std::atomic<int> faults_stopped{0};  // fault threads done cleaning up
std::atomic<bool> all_done{false};

// A thread that started a child process stays until the very end: the
// children die with the thread that forked them (PR_SET_PDEATHSIG).
void linger() {
    while (!all_done) std::this_thread::sleep_for(50ms);
}

Clock::time_point t0 = Clock::now();

// One line per injected fault, with the time since the load began, so a
// failure can be matched with the daemons' logs.
void event(const std::string& what) {
    const auto t = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stdout, "  [%7.2f s] %s\n", t, what.c_str());
    std::fflush(stdout);
}

// Sleeps up to `d`, returning early (false) once `flag` is set.
bool nap(std::chrono::milliseconds d, const std::atomic<bool>& flag) {
    const auto end = Clock::now() + d;
    while (Clock::now() < end) {
        if (flag)
            return false;
        std::this_thread::sleep_for(std::min<Clock::duration>(20ms, end - Clock::now()));
    }
    return !flag;
}

std::string tail(const std::string& text, size_t lines) {
    size_t pos = text.size();
    for (size_t n = 0; n <= lines && pos > 0; ++n) {
        const auto p = text.rfind('\n', pos - 1);
        if (p == std::string::npos)
            return text;
        pos = p;
    }
    return text.substr(pos + 1);
}

std::uintmax_t file_size(const std::string& path) {
    std::error_code ec;
    const auto n = fs::file_size(path, ec);
    return ec ? 0 : n;
}

std::string read_from(const std::string& path, std::uintmax_t offset) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool looks_corrupt(const std::string& what) {
    return what.find("malformed") != std::string::npos ||
           what.find("corrupt") != std::string::npos ||
           what.find("not a database") != std::string::npos;
}

// One replica: its files and its daemon, replaced on each restart.
struct ReplicaSlot {
    int index = 0;
    std::string name, db, sock, log, config;
    std::vector<std::string> args;
    std::mutex mutex;  // guards daemon
    std::unique_ptr<test::DaemonProcess> daemon;
    std::uintmax_t log_offset = 0;  // where the current incarnation's log starts
    std::int64_t restarts = 0;

    void start() {  // with mutex held
        log_offset = file_size(log);
        daemon = std::make_unique<test::DaemonProcess>(args, log);
    }
    pid_t pid() {
        std::lock_guard lock(mutex);
        return daemon && daemon->running() ? daemon->pid() : -1;
    }
};

struct Sample {
    double t = 0;
    std::vector<std::int64_t> rss_kb, outbox;
    std::vector<double> lag_s;
};

struct Run {
    Options opt;
    Counters counters;
    Ledger ledger;
    std::vector<std::unique_ptr<ReplicaSlot>> replicas;
    std::mutex samples_mutex;
    std::vector<Sample> samples;
    Clock::time_point started = Clock::now();
    std::string admin_conninfo;
    test::ThrowawayPostgres* pg = nullptr;
    std::mutex pg_mutex;  // stop/start vs. the final checks
};

// ---------------------------------------------------------------- writers

const char* const kWords[] = {"zebra", "okapi", "quagga", "lemur", "tapir", "ibis",  "narwhal",
                              "sloth", "gecko", "heron",  "koala", "yak",   "bongo", "dingo"};
const char* const kTags[] = {"red", "green", "blue", "work", "later", "read", "idea"};

std::string words(std::mt19937_64& rng, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) {
        if (i)
            s += ' ';
        s += kWords[rng() % std::size(kWords)];
    }
    return s;
}

template <typename T>
const T& pick(std::mt19937_64& rng, const std::vector<T>& v) {
    return v[rng() % v.size()];
}

// The item titled `key` as this replica has it now (after a write whose
// outcome is unknown: the local database is the truth the app sees).
std::optional<Expected> read_local(sqlite::Connection& db, const std::string& key) {
    sqlite::Statement st(db, "SELECT id, content FROM items WHERE title = ?");
    st.bind(1, key);
    if (!st.step())
        return std::nullopt;
    Expected e;
    e.content = st.text(1);
    e.track_tags = true;
    sqlite::Statement tags(db,
                           "SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id "
                           "WHERE it.item_id = ?");
    tags.bind(1, st.integer(0));
    while (tags.step()) e.tags.insert(tags.text(0));
    return e;
}

// Writes like the Le Stash CLI on one replica, only ever editing its own items.
// The Le Stash CLI on one replica: notes and imports, edits, tags, deletes,
// sources and sync logs; each write the app was told succeeded goes to the
// ledger.
class AppLoad {
  public:
    AppLoad(Run& run, ReplicaSlot& slot)
        : run_(run),
          slot_(slot),
          c_(run.counters),
          rng_(rng_for(run.opt.seed, 100 + static_cast<std::uint64_t>(slot.index))),
          app_(slot.db) {}

    void run() {
        while (!stop_writers) {
            const int roll = static_cast<int>(rng_() % 100);
            std::string kind, key;
            try {
                if (!write(roll, kind, key))
                    continue;
                c_.add(c_.ops, kind);
            } catch (const std::exception& e) {
                const std::string what = e.what();
                if (looks_corrupt(what))
                    c_.fail("the app saw corruption on " + slot_.name + ": " + what);
                c_.add(c_.failed, kind.empty() ? "app write" : kind);
                if (!key.empty() && !read_back(key))
                    return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng_() % 45));
        }
    }

  private:
    struct Own {
        std::int64_t id;
        Expected e;
        bool has_source_id;
    };

    // One write of the kind `roll` picks; false when there was nothing to do.
    // `kind` and `key` are set before the write, for the failure path.
    bool write(int roll, std::string& kind, std::string& key) {
        if (roll < 35 || live_.empty())
            insert(kind, key);
        else if (roll < 55)
            update(kind, key);
        else if (roll < 70)
            add_tag(kind, key);
        else if (roll < 80)
            return remove_tag(kind, key);
        else if (roll < 90)
            remove(kind, key);
        else if (roll < 95)
            user_data(kind, key);
        else
            sources(kind);
        return true;
    }

    // The rest of the user's data, on one of this replica's items: a
    // reading list with a note, a media row, a syndication, a profile. The
    // end check (verify on every replica) compares these tables too.
    void user_data(std::string& kind, std::string& key) {
        kind = "collections / media / syndications / profiles";
        key = pick(rng_, live_);
        const auto item = own_[key].id;
        switch (rng_() % 4) {
            case 0: {
                const auto list =
                    app_.create_collection(slot_.name + " list " + words(rng_, 1), std::nullopt);
                app_.add_to_collection(list, item, words(rng_, 3));
                break;
            }
            case 1:
                app_.add_media(item, "image", std::nullopt,
                               std::to_string(item) + "/" + words(rng_, 1) + ".png");
                break;
            case 2:
                app_.record_syndication(item, "bluesky", "at://" + key + "/" + std::to_string(n_++),
                                        std::nullopt);
                break;
            default:
                app_.upsert_profile("urn:li:person:" + words(rng_, 1), words(rng_, 2));
        }
    }

    void insert(std::string& kind, std::string& key) {
        const bool natural = rng_() % 10 < 7;
        kind = natural ? "insert (CLI upsert)" : "insert (note, no source_id)";
        key = slot_.name + "-" + std::to_string(n_++);
        test::ItemFields item;
        if (natural)
            item.source_id = key;
        item.title = key;
        item.content = key + " " + words(rng_, 3 + static_cast<int>(rng_() % 20));
        item.metadata = R"({"soak":true})";
        Expected e;
        e.content = item.content;
        e.track_tags = true;
        // Known before the write: if it throws, read_back decides.
        own_[key] = Own{0, e, natural};
        const auto id = natural ? app_.upsert_item(item) : app_.insert_item(item);
        own_[key].id = id;
        live_.push_back(key);
        run_.ledger.set(key, e);
    }

    void update(std::string& kind, std::string& key) {
        key = pick(rng_, live_);
        auto& o = own_[key];
        const auto content = key + " " + words(rng_, 2 + static_cast<int>(rng_() % 30));
        if (o.has_source_id && rng_() % 2) {
            kind = "update (CLI re-import)";
            test::ItemFields item;
            item.source_id = key;
            item.title = key;
            item.content = content;
            item.metadata = R"({"soak":true})";
            app_.upsert_item(item);
        } else {
            kind = "update (content)";
            app_.update_content(o.id, content);
        }
        o.e.content = content;
        run_.ledger.set(key, o.e);
    }

    void add_tag(std::string& kind, std::string& key) {
        kind = "tag add";
        key = pick(rng_, live_);
        auto& o = own_[key];
        const std::string tag = kTags[rng_() % std::size(kTags)];
        app_.add_tag(o.id, tag);
        o.e.tags.insert(tag);
        run_.ledger.set(key, o.e);
    }

    bool remove_tag(std::string& kind, std::string& key) {
        kind = "tag remove";
        key = pick(rng_, live_);
        auto& o = own_[key];
        if (o.e.tags.empty())
            return false;
        auto it = o.e.tags.begin();
        std::advance(it, static_cast<long>(rng_() % o.e.tags.size()));
        const std::string tag = *it;
        app_.remove_tag(o.id, tag);
        o.e.tags.erase(tag);
        run_.ledger.set(key, o.e);
        return true;
    }

    void remove(std::string& kind, std::string& key) {
        kind = "delete";
        key = pick(rng_, live_);
        app_.delete_item(own_[key].id);
        forget_live(key);
        own_[key].e.exists = false;
        run_.ledger.set(key, own_[key].e);
    }

    void sources(std::string& kind) {
        kind = "sources / sync_log";
        const std::string source = rng_() % 2 ? "bluesky" : "linkedin";
        app_.upsert_source(source, rng_() % 2, "2026-11-25T07:00:00");
        const auto id = app_.start_sync_log(source);
        app_.finish_sync_log(id, "completed", static_cast<int>(rng_() % 10), 0, std::nullopt);
    }

    // After a failed write: whatever the database holds now is what the app
    // was told. False when even that cannot be read.
    bool read_back(const std::string& key) {
        try {
            const auto actual = read_local(app_.db(), key);
            if (!actual) {
                forget_live(key);
                if (own_[key].id == 0) {
                    own_.erase(key);
                    run_.ledger.erase(key);
                } else {
                    own_[key].e.exists = false;
                    run_.ledger.set(key, own_[key].e);
                }
                return true;
            }
            if (own_[key].id == 0) {
                own_[key].id =
                    app_.db().query_int("SELECT id FROM items WHERE title = '" + key + "'");
                live_.push_back(key);
            }
            own_[key].e = *actual;
            run_.ledger.set(key, *actual);
            return true;
        } catch (const std::exception& again) {
            c_.fail("cannot read back item " + key + " on " + slot_.name +
                    " after a failed write: " + again.what());
            return false;
        }
    }

    void forget_live(const std::string& key) {
        live_.erase(std::remove(live_.begin(), live_.end(), key), live_.end());
    }

    Run& run_;
    ReplicaSlot& slot_;
    Counters& c_;
    std::mt19937_64 rng_;
    test::AppWriter app_;
    std::map<std::string, Own> own_;
    std::vector<std::string> live_;
    int n_ = 0;
};

void app_writer(Run& run, ReplicaSlot& slot) {
    AppLoad(run, slot).run();
}

// Writes straight into Postgres over libpq, as psql or another tool would.
class PostgresLoad {
  public:
    explicit PostgresLoad(Run& run)
        : run_(run), c_(run.counters), rng_(rng_for(run.opt.seed, 200)) {}

    void run() {
        while (!stop_writers) {
            std::string kind, key;
            try {
                if (!conn_)
                    conn_ = std::make_unique<pqxx::connection>(run_.admin_conninfo);
                const int roll = static_cast<int>(rng_() % 100);
                pqxx::work tx(*conn_);
                write(tx, roll, kind, key);
                tx.commit();
                run_.ledger.set(key, own_[key]);
                c_.add(c_.ops, kind);
            } catch (const std::exception& e) {
                c_.add(c_.failed, kind.empty() ? "Postgres connect" : kind);
                conn_.reset();
                settle(key);
                std::this_thread::sleep_for(100ms);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng_() % 80));
        }
    }

  private:
    void write(pqxx::work& tx, int roll, std::string& kind, std::string& key) {
        if (roll < 50 || live_.empty()) {
            kind = "insert (Postgres, libpq)";
            key = "pg-" + std::to_string(n_++);
            Expected e;
            e.content = key + " " + words(rng_, 3 + static_cast<int>(rng_() % 20));
            own_[key] = e;
            live_.push_back(key);
            tx.exec_params(
                "INSERT INTO lestash.items (id, source_type, source_id, title, content) "
                "VALUES (gen_random_uuid(), 'psql', $1, $1, $2)",
                key, e.content);
        } else if (roll < 85) {
            kind = "update (Postgres, libpq)";
            key = pick(rng_, live_);
            own_[key].content = key + " " + words(rng_, 2 + static_cast<int>(rng_() % 30));
            tx.exec_params("UPDATE lestash.items SET content = $2 WHERE title = $1", key,
                           own_[key].content);
        } else {
            kind = "delete (Postgres, libpq)";
            key = pick(rng_, live_);
            own_[key].exists = false;
            live_.erase(std::remove(live_.begin(), live_.end(), key), live_.end());
            tx.exec_params("DELETE FROM lestash.items WHERE title = $1", key);
        }
    }

    // After a failed write, committed or not: ask Postgres once it is back.
    void settle(const std::string& key) {
        while (!key.empty() && !stop_writers) {
            try {
                conn_ = std::make_unique<pqxx::connection>(run_.admin_conninfo);
                pqxx::read_transaction tx(*conn_);
                const auto r =
                    tx.exec_params("SELECT content FROM lestash.items WHERE title = $1", key);
                live_.erase(std::remove(live_.begin(), live_.end(), key), live_.end());
                if (r.empty()) {
                    own_[key].exists = false;
                } else {
                    own_[key].exists = true;
                    own_[key].content = r[0][0].as<std::string>();
                    live_.push_back(key);
                }
                run_.ledger.set(key, own_[key]);
                return;
            } catch (const std::exception&) {
                conn_.reset();
                std::this_thread::sleep_for(200ms);
            }
        }
        if (!key.empty() && stop_writers && !conn_) {
            // Never settled: leave it out of the ledger rather than guess.
            run_.ledger.erase(key);
            c_.add(c_.failed, "Postgres write left unsettled (not counted)");
        }
    }

    Run& run_;
    Counters& c_;
    std::mt19937_64 rng_;
    std::unique_ptr<pqxx::connection> conn_;
    std::map<std::string, Expected> own_;
    std::vector<std::string> live_;
    int n_ = 0;
};

void pg_writer(Run& run) {
    PostgresLoad(run).run();
}

// ---------------------------------------------------------------- crash loop

// The step the daemon's log shows last, in an incarnation's log text.
std::string last_step(const std::string& log) {
    std::string step = "startup";
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        if (const auto p = line.find("step "); p != std::string::npos)
            step = line.substr(p + 5);
        else if (line.find("sync (") != std::string::npos)
            step = "idle";
        else if (line.find("offline") != std::string::npos ||
                 line.find("retrying with backoff") != std::string::npos ||
                 line.find("sync failed") != std::string::npos ||
                 line.find("sync stopped") != std::string::npos)
            step = "offline/backoff";
    }
    while (!step.empty() && (step.back() == '\r' || step.back() == ' ')) step.pop_back();
    return step;
}

std::string phase_of(const std::string& step) {
    if (step.rfind("push:", 0) == 0)
        return "push";
    if (step == "pull:apply")
        return "apply";
    if (step == "pull:before-cursor-save")
        return "cursor save";
    if (step.rfind("pull:", 0) == 0)
        return "pull";
    return step;  // idle, startup, offline/backoff
}

// SIGKILLs replica A's daemon at random moments, half of them when its log
// shows a chosen step, and starts it again.
void crash_loop(Run& run, ReplicaSlot& slot) {
    auto rng = rng_for(run.opt.seed, 300);
    auto& c = run.counters;
    static const std::vector<std::string> targets = {"push:send", "push:after-commit", "pull:fetch",
                                                     "pull:apply", "pull:before-cursor-save"};
    while (!stop_faults) {
        const double mean = run.opt.kill_interval_s;
        if (rng() % 2) {
            if (!nap(ms(uniform(rng, 0.1, 2 * mean)), stop_faults))
                break;
        } else {
            const std::string target = "step " + pick(rng, targets);
            const auto give_up = Clock::now() + ms(uniform(rng, mean, 3 * mean));
            auto offset = slot.log_offset;
            std::string seen;
            while (Clock::now() < give_up && !stop_faults) {
                seen += read_from(slot.log, offset + seen.size());
                const auto last_nl = seen.find_last_of('\n');
                if (last_nl != std::string::npos && last_nl > 0) {
                    const auto prev = seen.find_last_of('\n', last_nl - 1);
                    const auto line = seen.substr(prev == std::string::npos ? 0 : prev + 1);
                    if (line.find(target) != std::string::npos)
                        break;
                }
                if (seen.size() > 65536) {  // keep only the tail
                    offset += seen.size() - 4096;
                    seen.erase(0, seen.size() - 4096);
                }
                std::this_thread::sleep_for(1ms);
            }
            if (stop_faults)
                break;
            if (rng() % 2)
                std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        }
        std::lock_guard lock(slot.mutex);
        if (!slot.daemon->running()) {
            c.fail(slot.name + "'s daemon exited by itself (status " +
                   std::to_string(slot.daemon->wait(1s)) + "); its log ends:\n" +
                   tail(slot.daemon->log(), 30));
        } else {
            slot.daemon->signal(SIGKILL);
            slot.daemon->wait(60s);
            const auto step = last_step(read_from(slot.log, slot.log_offset));
            c.add(c.kills, phase_of(step));
            c.add(c.kill_steps, step);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
        slot.start();
        ++slot.restarts;
    }
    ++faults_stopped;
    linger();
}

// ---------------------------------------------------------------- faults

// The app holds the write lock for seconds (longer than any batch of the
// daemon), within its own 5 s busy timeout.
void hold_write_lock(Run& run, std::mt19937_64& rng, int& n) {
    auto& c = run.counters;
    auto& slot = *run.replicas[rng() % run.replicas.size()];
    const auto hold = ms(uniform(rng, 1.0, 3.5));
    std::vector<std::pair<std::string, Expected>> written;
    try {
        sqlite::Connection db(slot.db, SQLITE_OPEN_READWRITE);
        sqlite3_busy_timeout(db.handle(), 5000);
        db.exec("PRAGMA foreign_keys = ON");
        db.exec("BEGIN IMMEDIATE");
        event("long write transaction on " + slot.name);
        const int rows = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < rows; ++i) {
            const std::string key = "lt-" + slot.name + "-" + std::to_string(n++);
            Expected e;
            e.content = key + " " + words(rng, 5) + " written in a long transaction";
            e.track_tags = true;
            sqlite::Statement st(
                db, "INSERT INTO items (source_type, title, content) VALUES ('note', ?, ?)");
            st.bind_all(key, e.content).run();
            written.emplace_back(key, e);
        }
        std::this_thread::sleep_for(hold);
        db.exec("COMMIT");
        for (const auto& [key, e] : written) run.ledger.set(key, e);
        c.add(c.sqlite, "app write transaction held 1-3.5 s");
        c.add(c.ops, "insert (long transaction)", static_cast<std::int64_t>(written.size()));
    } catch (const std::exception& e) {
        if (looks_corrupt(e.what()))
            c.fail("the app saw corruption on " + slot.name + ": " + e.what());
        c.add(c.failed, "long transaction");
    }
}

// The daemon's files may not grow past a quota for a while.
void file_size_quota(Run& run, std::mt19937_64& rng) {
    auto& c = run.counters;
    auto& slot = *run.replicas[1 + rng() % (run.replicas.size() - 1)];
    const pid_t pid = slot.pid();
    if (pid <= 0)
        return;
    // Below the database file's size: the next WAL frames written
    // past it (the WAL restarts from its start) fail with EFBIG.
    const auto base = file_size(slot.db);
    rlimit lim{};
    lim.rlim_cur = std::max<rlim_t>(
        65536, static_cast<rlim_t>(static_cast<double>(base) * uniform(rng, 0.3, 1.0)));
    lim.rlim_max = RLIM_INFINITY;
    if (::prlimit(pid, RLIMIT_FSIZE, &lim, nullptr) != 0)
        return;  // it just exited
    c.add(c.sqlite, "file size quota (RLIMIT_FSIZE) on a daemon");
    event("quota on " + slot.name + "'s daemon: files up to " + std::to_string(lim.rlim_cur) +
          " bytes");
    nap(ms(uniform(rng, 2, 6)), stop_faults);
    lim.rlim_cur = RLIM_INFINITY;
    ::prlimit(pid, RLIMIT_FSIZE, &lim, nullptr);
    event("quota on " + slot.name + "'s daemon lifted");
}

void sqlite_faults(Run& run) {
    auto rng = rng_for(run.opt.seed, 400);
    int n = 0;
    while (nap(ms(uniform(rng, 3, 10)), stop_faults)) {
        const bool quota = run.replicas.size() > 1 && rng() % 2;
        if (quota)
            file_size_quota(run, rng);
        else
            hold_write_lock(run, rng, n);
    }
    ++faults_stopped;
}

void postgres_restarts(Run& run) {
    auto rng = rng_for(run.opt.seed, 500);
    auto& c = run.counters;
    while (nap(ms(uniform(rng, 10, 30)), stop_faults)) {
        const std::string mode = rng() % 2 ? "fast" : "immediate";
        std::lock_guard lock(run.pg_mutex);
        event("Postgres stopped (" + mode + ")");
        run.pg->stop(mode);
        std::this_thread::sleep_for(ms(uniform(rng, 0.1, 3)));
        for (int attempt = 1;; ++attempt) {
            try {
                run.pg->start();
                break;
            } catch (const std::exception& e) {
                if (attempt == 5)
                    throw;
                std::fprintf(stderr, "Postgres did not start again (attempt %d): %s\n", attempt,
                             e.what());
                std::this_thread::sleep_for(1s);
            }
        }
        c.add(c.pg, mode);
        event("Postgres started again");
    }
    ++faults_stopped;
    linger();
}

void network_faults(Run& run, test::FaultProxy& proxy) {
    auto rng = rng_for(run.opt.seed, 600);
    auto& c = run.counters;
    proxy.set_random_faults(ms(uniform(rng, 2, 5)));
    while (nap(ms(uniform(rng, 2, 8)), stop_faults)) {
        const auto kind = rng() % 4;
        event(std::string("network fault: ") + (kind == 0   ? "blackhole"
                                                : kind == 1 ? "down"
                                                : kind == 2 ? "cut at offset"
                                                            : "stall"));
        switch (kind) {
            case 0:
                c.add(c.net, "blackhole 1-4 s");
                proxy.set_blackhole(true);
                nap(ms(uniform(rng, 1, 4)), stop_faults);
                proxy.set_blackhole(false);
                break;
            case 1:
                c.add(c.net, "Postgres unreachable 1-4 s");
                proxy.set_down(true);
                nap(ms(uniform(rng, 1, 4)), stop_faults);
                proxy.set_down(false);
                break;
            case 2:
                c.add(c.net, "cut at a random byte offset (next 3 connections)");
                proxy.cut_at_random_offset(1 + rng() % 200000, 3);
                break;
            default:
                c.add(c.net, "stall 0.2-3 s");
                proxy.stall(ms(uniform(rng, 0.2, 3)));
                break;
        }
    }
    proxy.set_random_faults(0ms);
    proxy.set_blackhole(false);
    proxy.set_down(false);
    ++faults_stopped;
}

// ---------------------------------------------------------------- sampling

std::int64_t rss_kb(pid_t pid) {
    const auto m = proc::memory(pid);
    return m ? m->rss_kb : -1;
}

// Outbox depth and the age of its oldest entry, read-only.
std::pair<std::int64_t, double> outbox(const std::string& db_path) {
    sqlite::Connection db(db_path, SQLITE_OPEN_READONLY);
    sqlite3_busy_timeout(db.handle(), 5000);
    Outbox box(db);
    return {box.depth(), box.lag_seconds()};
}

// Samples every replica; restarts (and reports) a daemon that died unasked.
void sampler(Run& run) {
    while (nap(ms(run.opt.sample_interval_s), stop_sampling)) {
        Sample s;
        s.t = std::chrono::duration<double>(Clock::now() - run.started).count();
        for (auto& slot : run.replicas) {
            if (slot->index != 0 || !run.opt.kills) {  // a's own loop watches it
                std::lock_guard lock(slot->mutex);
                if (!stop_sampling && !slot->daemon->running()) {
                    run.counters.fail(slot->name + "'s daemon exited by itself (status " +
                                      std::to_string(slot->daemon->wait(1s)) +
                                      "); its log ends:\n" + tail(slot->daemon->log(), 30));
                    slot->start();
                    ++slot->restarts;
                }
            }
            const pid_t pid = slot->pid();
            s.rss_kb.push_back(pid > 0 ? rss_kb(pid) : -1);
            try {
                const auto [depth, lag] = outbox(slot->db);
                s.outbox.push_back(depth);
                s.lag_s.push_back(lag);
            } catch (const std::exception& e) {
                if (looks_corrupt(e.what()))
                    run.counters.fail("a reader saw corruption on " + slot->name + ": " + e.what());
                s.outbox.push_back(-1);
                s.lag_s.push_back(0);
            }
        }
        std::lock_guard lock(run.samples_mutex);
        run.samples.push_back(std::move(s));
    }
    linger();
}

// ---------------------------------------------------------------- checks

struct Found {
    std::string content;
    std::set<std::string> tags;
};
using Place = std::map<std::string, std::vector<Found>>;  // title -> rows with it

std::set<std::string> split_tags(const std::string& s) {
    std::set<std::string> out;
    std::stringstream in(s);
    std::string t;
    while (std::getline(in, t, ',')) out.insert(t);
    return out;
}

Place read_postgres(const std::string& conninfo) {
    pqxx::connection conn(conninfo);
    pqxx::read_transaction tx(conn);
    Place p;
    for (const auto& r : tx.exec(
             "SELECT i.title, coalesce(i.content, ''), coalesce((SELECT string_agg(t.name, ',') "
             "FROM lestash.item_tags it JOIN lestash.tags t ON t.id = it.tag_id WHERE "
             "it.item_id = i.id), '') FROM lestash.items i WHERE i.title IS NOT NULL"))
        p[r[0].as<std::string>()].push_back(
            {r[1].as<std::string>(), split_tags(r[2].as<std::string>())});
    return p;
}

Place read_replica(const std::string& path) {
    sqlite::Connection db(path, SQLITE_OPEN_READONLY);
    sqlite3_busy_timeout(db.handle(), 5000);
    Place p;
    sqlite::Statement st(db,
                         "SELECT i.title, coalesce(i.content, ''), coalesce((SELECT "
                         "group_concat(t.name, ',') FROM item_tags it JOIN tags t ON t.id = "
                         "it.tag_id WHERE it.item_id = i.id), '') FROM items i WHERE i.title IS "
                         "NOT NULL");
    while (st.step()) p[st.text(0)].push_back({st.text(1), split_tags(st.text(2))});
    return p;
}

struct LedgerResult {
    std::int64_t checked = 0, lost = 0, duplicated = 0, resurrected = 0, wrong = 0;
    std::vector<std::string> examples;
};

void compare(const std::map<std::string, Expected>& ledger, const Place& place,
             const std::string& where, LedgerResult& r) {
    auto example = [&](const std::string& s) {
        if (r.examples.size() < 20)
            r.examples.push_back(where + ": " + s);
    };
    for (const auto& [key, e] : ledger) {
        ++r.checked;
        const auto it = place.find(key);
        const size_t n = it == place.end() ? 0 : it->second.size();
        if (!e.exists) {
            if (n > 0)
                ++r.resurrected, example(key + " was deleted but is there");
            continue;
        }
        if (n == 0) {
            ++r.lost, example(key + " is missing");
            continue;
        }
        if (n > 1)
            ++r.duplicated, example(key + " is there " + std::to_string(n) + " times");
        const auto& f = it->second.front();
        if (f.content != e.content || (e.track_tags && f.tags != e.tags))
            ++r.wrong, example(key + " has content \"" + f.content.substr(0, 60) + "\" (want \"" +
                               e.content.substr(0, 60) + "\") or other tags");
    }
}

nlohmann::json call(ReplicaSlot& slot, const std::string& method, const nlohmann::json& params,
                    std::chrono::milliseconds timeout) {
    ControlClient client(slot.sock);
    return client.call(method, params, {}, timeout);
}

// ---------------------------------------------------------------- the run

std::string join(const std::map<std::string, std::int64_t>& m, std::int64_t* total = nullptr) {
    std::string s;
    std::int64_t sum = 0;
    for (const auto& [k, v] : m) {
        s += (s.empty() ? "" : ", ") + k + " " + std::to_string(v);
        sum += v;
    }
    if (total)
        *total = sum;
    return s.empty() ? "none" : s;
}

std::string migrate_cmd(const LocalPostgres& pg, const std::string& db) {
    const std::string dir = std::string(LESTASH_SOURCE_DIR) + "/migrations/postgres";
    return "for f in " + dir + "/*.sql; do psql -X -q -v ON_ERROR_STOP=1 -h " + pg.socket_dir() +
           " -p " + std::to_string(pg.port()) + " -U postgres -d " + db +
           " -f \"$f\" || exit 1; done";
}

// What the final checks found, for the report.
struct Findings {
    double load_seconds = 0, converge_seconds = 0;
    int diverged = 0, integrity_failures = 0;
    std::size_t keys = 0;
    LedgerResult ledger;
    std::int64_t max_outbox = 0, peak_rss = 0;
    double max_lag = 0;
    std::vector<std::int64_t> final_outbox, final_rss;
};

// A throwaway Postgres with the migrations and the daemons' login role;
// returns the daemons' conninfo, through a fault proxy when asked for one.
std::string start_upstream(Run& run, test::ThrowawayPostgres& pg,
                           std::unique_ptr<test::FaultProxy>& proxy) {
    run.pg = &pg;
    const auto dbname = pg.create_database("soak");
    if (const auto m = test::run_command(migrate_cmd(pg, dbname)); m.status != 0)
        throw std::runtime_error("migrations failed:\n" + m.output);
    pg.exec("CREATE ROLE lestash_soak LOGIN PASSWORD 'soak-pw' IN ROLE lestash_sync");
    run.admin_conninfo = pg.conninfo(dbname);
    std::string conninfo = pg.conninfo_as("lestash_soak", "soak-pw", dbname);
    if (run.opt.network_faults) {
        proxy = std::make_unique<test::FaultProxy>(
            "127.0.0.1", static_cast<std::uint16_t>(pg.port()), run.opt.seed);
        conninfo = proxy->host_port_conninfo() + " dbname=" + dbname +
                   " user=lestash_soak password=soak-pw";
    }
    return conninfo + " connect_timeout=5";
}

// A daemon per replica on a fresh v11 database, each through its first cycle.
void start_replicas(Run& run, const fs::path& dir, const std::string& conninfo) {
    for (int i = 0; i < run.opt.replicas; ++i) {
        auto slot = std::make_unique<ReplicaSlot>();
        slot->index = i;
        slot->name = std::string(1, static_cast<char>('a' + i));
        slot->db = (dir / (slot->name + ".db")).string();
        slot->sock = (dir / (slot->name + ".sock")).string();
        slot->log = (dir / (slot->name + ".log")).string();
        slot->config = (dir / (slot->name + ".toml")).string();
        test::create_lestash_db(slot->db, 11);
        std::ofstream(slot->config) << "[sync]\nmax_backoff_seconds = 5\n";
        slot->args = {"--config", slot->config, "--db",      slot->db,   "--postgres",  conninfo,
                      "--socket", slot->sock,   "--replica", slot->name, "--log-level", "debug"};
        {
            std::lock_guard lock(slot->mutex);
            slot->start();
        }
        run.replicas.push_back(std::move(slot));
    }
    // Each daemon has finished its first cycle (it answers, and counts one).
    for (auto& slot : run.replicas)
        if (!test::eventually(
                [&] {
                    try {
                        return call(*slot, "status", nlohmann::json::object(), 10s)
                                   .value("cycles", 0) > 0;
                    } catch (const std::exception&) {
                        return false;
                    }
                },
                120s))
            throw std::runtime_error(slot->name + "'s daemon did not start; its log:\n" +
                                     read_from(slot->log, 0));
}

// The writers and the fault threads for the run's duration; returns once
// the faults have cleaned up and the writers have stopped. The sampler
// keeps going (it is in `faults`, stopped by stop_sampling).
double run_load(Run& run, test::FaultProxy* proxy, std::vector<std::thread>& writers,
                std::vector<std::thread>& faults) {
    auto& c = run.counters;
    enum Kind { writer, fault, keeper };
    auto guarded = [&](const char* what, auto fn, Kind kind = fault) {
        return [&c, what, fn, kind] {
            try {
                fn();
            } catch (const std::exception& e) {
                c.fail(std::string(what) + " stopped on an error: " + e.what());
                if (kind == fault)
                    ++faults_stopped;
                if (kind != writer)
                    linger();
            }
        };
    };
    for (auto& slot : run.replicas)
        writers.emplace_back(guarded(
            "an app writer", [&run, s = slot.get()] { app_writer(run, *s); }, writer));
    writers.emplace_back(guarded(
        "the Postgres writer", [&run] { pg_writer(run); }, writer));
    faults.emplace_back(guarded(
        "the sampler", [&run] { sampler(run); }, keeper));
    run.started = t0 = Clock::now();
    if (run.opt.kills)
        faults.emplace_back(
            guarded("the crash loop", [&run] { crash_loop(run, *run.replicas[0]); }));
    if (run.opt.sqlite_faults)
        faults.emplace_back(guarded("the SQLite faults", [&run] { sqlite_faults(run); }));
    if (run.opt.pg_restarts)
        faults.emplace_back(guarded("the Postgres restarts", [&run] { postgres_restarts(run); }));
    if (proxy)
        faults.emplace_back(
            guarded("the network faults", [&run, proxy] { network_faults(run, *proxy); }));
    const auto load_end = run.started + std::chrono::seconds(run.opt.duration_s);
    while (Clock::now() < load_end) {
        std::this_thread::sleep_for(std::min<Clock::duration>(10s, load_end - Clock::now()));
        const auto t = std::chrono::duration<double>(Clock::now() - run.started).count();
        std::int64_t ops = 0, kills = 0;
        join(c.ops, &ops);
        join(c.kills, &kills);
        std::cout << "  t=" << static_cast<int>(t) << " s: " << ops << " writes, " << kills
                  << " kills" << std::endl;
    }
    stop_faults = true;
    const int fault_threads = static_cast<int>(faults.size()) - 1;  // all but the sampler
    while (faults_stopped < fault_threads) std::this_thread::sleep_for(50ms);
    stop_writers = true;
    for (auto& t : writers) t.join();
    return std::chrono::duration<double>(Clock::now() - run.started).count();
}

// Convergence: every daemon catches up and verify finds nothing.
void converge(Run& run, Findings& f) {
    std::cout << "load over; waiting for the replicas to converge" << std::endl;
    const auto conv_start = Clock::now();
    const auto deadline = conv_start + std::chrono::seconds(run.opt.converge_deadline_s);
    std::vector<nlohmann::json> verify(run.replicas.size());
    std::string last_problem;
    bool converged = false;
    while (!converged && Clock::now() < deadline) {
        converged = true;
        for (size_t i = 0; i < run.replicas.size(); ++i) {
            auto& slot = *run.replicas[i];
            try {
                call(slot, "sync.now", {{"wait", true}, {"timeout_ms", 30000}}, 60s);
                verify[i] = call(slot, "verify", {{"repair", false}}, 300s);
                const auto status = call(slot, "status", nlohmann::json::object(), 30s);
                if (!verify[i].value("matches", false) ||
                    verify[i].value("pending_local_rows", 0) != 0 ||
                    status.value("outbox_depth", -1) != 0) {
                    converged = false;
                    last_problem = slot.name + ": verify " + verify[i].dump().substr(0, 400) +
                                   ", outbox " + std::to_string(status.value("outbox_depth", -1));
                }
            } catch (const std::exception& e) {
                converged = false;
                last_problem = slot.name + ": " + e.what();
            }
        }
        if (!converged)
            std::this_thread::sleep_for(1s);
    }
    f.converge_seconds = std::chrono::duration<double>(Clock::now() - conv_start).count();
    if (!converged)
        run.counters.fail("the replicas did not converge within " +
                          std::to_string(run.opt.converge_deadline_s) + " s: " + last_problem);
    for (size_t i = 0; i < verify.size(); ++i)
        if (!verify[i].is_object() || !verify[i].value("matches", false))
            ++f.diverged;
}

// Memory once the load is over, against the middle of the run; outboxes
// empty.
void check_memory_and_outboxes(Run& run, Findings& f) {
    auto& c = run.counters;
    for (auto& slot : run.replicas) {
        const pid_t pid = slot->pid();
        f.final_rss.push_back(pid > 0 ? rss_kb(pid) : -1);
    }
    for (const auto& s : run.samples)
        for (size_t i = 0; i < s.outbox.size(); ++i) {
            f.max_outbox = std::max(f.max_outbox, s.outbox[i]);
            f.max_lag = std::max(f.max_lag, s.lag_s[i]);
            f.peak_rss = std::max(f.peak_rss, s.rss_kb[i]);
        }
    for (auto& slot : run.replicas) f.final_outbox.push_back(outbox(slot->db).first);
    // A, when killed, restarts too often to tell.
    for (size_t i = run.opt.kills ? 1 : 0; i < run.replicas.size(); ++i) {
        std::vector<std::int64_t> mid;
        for (size_t k = run.samples.size() / 4; k < run.samples.size() * 3 / 4; ++k)
            if (run.samples[k].rss_kb[i] > 0)
                mid.push_back(run.samples[k].rss_kb[i]);
        if (mid.empty() || f.final_rss[i] <= 0)
            continue;
        std::nth_element(mid.begin(), mid.begin() + static_cast<long>(mid.size() / 2), mid.end());
        const auto median = mid[mid.size() / 2];
        if (f.final_rss[i] > 4 * median + 65536)
            c.fail(run.replicas[i]->name +
                   "'s daemon kept growing: " + std::to_string(f.final_rss[i]) +
                   " kB at the end, " + std::to_string(median) + " kB (median) mid-run");
    }
    for (size_t i = 0; i < f.final_outbox.size(); ++i)
        if (f.final_outbox[i] != 0)
            c.fail(run.replicas[i]->name + "'s outbox still holds " +
                   std::to_string(f.final_outbox[i]) + " changes");
}

// Every acknowledged write, exactly once, everywhere.
void check_ledger(Run& run, Findings& f) {
    const auto ledger = run.ledger.snapshot();
    f.keys = ledger.size();
    auto& lr = f.ledger;
    {
        std::lock_guard lock(run.pg_mutex);
        compare(ledger, read_postgres(run.admin_conninfo), "Postgres", lr);
    }
    int ledger_diverged = 0;
    for (auto& slot : run.replicas) {
        const auto before = lr.lost + lr.duplicated + lr.wrong + lr.resurrected;
        compare(ledger, read_replica(slot->db), "replica " + slot->name, lr);
        if (lr.lost + lr.duplicated + lr.wrong + lr.resurrected != before)
            ++ledger_diverged;
    }
    f.diverged = std::max(f.diverged, ledger_diverged);
    if (lr.lost + lr.duplicated + lr.wrong + lr.resurrected > 0) {
        std::string ex;
        for (const auto& e : lr.examples) ex += "\n    " + e;
        run.counters.fail("acknowledged writes not found exactly once as written:" + ex);
    }
}

// Clean stop, then the files as the app would open them.
void stop_and_check_files(Run& run, Findings& f) {
    auto& c = run.counters;
    stop_sampling = true;
    std::this_thread::sleep_for(ms(run.opt.sample_interval_s) + 100ms);
    for (auto& slot : run.replicas) {
        std::lock_guard lock(slot->mutex);
        const int status = slot->daemon->stop(SIGTERM, 120s);
        if (status != 0)
            c.fail(slot->name + "'s daemon exited with status " + std::to_string(status) +
                   " on SIGTERM; its log ends:\n" + tail(slot->daemon->log(), 20));
    }
    for (auto& slot : run.replicas) {
        try {
            sqlite::Connection db(slot->db, SQLITE_OPEN_READWRITE);
            sqlite3_busy_timeout(db.handle(), 5000);
            const auto ic = db.query_text("PRAGMA integrity_check");
            if (ic != "ok") {
                ++f.integrity_failures;
                c.fail(slot->name + ": PRAGMA integrity_check says " + ic.value_or("nothing"));
            }
            db.exec("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')");
        } catch (const std::exception& e) {
            ++f.integrity_failures;
            c.fail(slot->name + ": integrity check failed: " + e.what());
        }
    }
}

// The network faults, with the proxy's own counts when there is one.
std::map<std::string, std::int64_t> network_counts(const Run& run, test::FaultProxy* proxy) {
    std::map<std::string, std::int64_t> net = run.counters.net;
    if (proxy) {
        const auto st = proxy->stats();
        net["proxy connections"] = static_cast<std::int64_t>(st.connections);
        net["proxy cuts (all kinds)"] = static_cast<std::int64_t>(st.cuts);
        net["proxy stalls (all kinds)"] = static_cast<std::int64_t>(st.stalls);
        net["proxy refusals"] = static_cast<std::int64_t>(st.refused);
    }
    return net;
}

std::string slash_list(const std::vector<std::int64_t>& values, std::int64_t divisor = 1) {
    std::string s;
    for (auto v : values) s += (s.empty() ? "" : "/") + std::to_string(v / divisor);
    return s;
}

void print_report(Run& run, const Findings& f, const std::map<std::string, std::int64_t>& net) {
    auto& c = run.counters;
    const auto& opt = run.opt;
    const auto& lr = f.ledger;
    std::int64_t ops_total = 0, kills_total = 0, net_total = 0, pg_total = 0, sq_total = 0,
                 failed_total = 0;
    const auto ops_s = join(c.ops, &ops_total);
    const auto kills_s = join(c.kills, &kills_total);
    const auto steps_s = join(c.kill_steps);
    const auto net_s = join(net);
    join(c.net, &net_total);
    const auto pg_s = join(c.pg, &pg_total);
    const auto sq_s = join(c.sqlite, &sq_total);
    const auto failed_s = join(c.failed, &failed_total);
    std::int64_t restarts = 0;
    for (auto& slot : run.replicas) restarts += slot->restarts;

    auto row = [](const std::string& k, const std::string& v) {
        std::cout << "  " << k << std::string(k.size() < 30 ? 30 - k.size() : 1, ' ') << v << "\n";
    };
    char buf[64];
    std::cout << "\n=== lestash-soak report (seed " << opt.seed << ") ===\n";
    row("load / convergence",
        (std::snprintf(buf, sizeof buf, "%.0f s / %.1f s", f.load_seconds, f.converge_seconds),
         buf));
    row("replicas", std::to_string(opt.replicas));
    row("operations acknowledged", std::to_string(ops_total) + " (" + ops_s + ")");
    row("operations refused", std::to_string(failed_total) + " (" + failed_s + ")");
    row("keys tracked", std::to_string(f.keys));
    row("kills of A (SIGKILL)", std::to_string(kills_total) + " (by phase: " + kills_s + ")");
    row("  by last logged step", steps_s);
    row("network faults", opt.network_faults ? std::to_string(net_total) + " (" + net_s + ")"
                                             : "off (--no-network-faults)");
    row("Postgres restarts", std::to_string(pg_total) + " (" + pg_s + ")");
    row("SQLite faults", std::to_string(sq_total) + " (" + sq_s + ")");
    row("rows lost", std::to_string(lr.lost));
    row("rows duplicated", std::to_string(lr.duplicated));
    row("rows with wrong values", std::to_string(lr.wrong));
    row("deleted rows back", std::to_string(lr.resurrected));
    row("replicas diverged", std::to_string(f.diverged));
    row("integrity / FTS5 failures", std::to_string(f.integrity_failures));
    row("max outbox depth",
        std::to_string(f.max_outbox) + " (final " + slash_list(f.final_outbox) + ")");
    row("max lag", (std::snprintf(buf, sizeof buf, "%.1f s", f.max_lag), buf));
    row("peak RSS", std::to_string(f.peak_rss / 1024) +
                        " MiB (at the end: " + slash_list(f.final_rss, 1024) + " MiB)");
    row("daemon restarts", std::to_string(restarts));
    row("samples", std::to_string(run.samples.size()));
    std::cout << std::flush;
}

void write_report_json(Run& run, const Findings& f,
                       const std::map<std::string, std::int64_t>& net) {
    const auto& c = run.counters;
    const auto& opt = run.opt;
    nlohmann::json j = {{"seed", opt.seed},
                        {"duration_s", opt.duration_s},
                        {"load_seconds", f.load_seconds},
                        {"converge_seconds", f.converge_seconds},
                        {"replicas", opt.replicas},
                        {"operations", c.ops},
                        {"refused", c.failed},
                        {"kills", c.kills},
                        {"kill_steps", c.kill_steps},
                        {"network_faults", net},
                        {"postgres_restarts", c.pg},
                        {"sqlite_faults", c.sqlite},
                        {"rows_lost", f.ledger.lost},
                        {"rows_duplicated", f.ledger.duplicated},
                        {"rows_wrong", f.ledger.wrong},
                        {"rows_resurrected", f.ledger.resurrected},
                        {"replicas_diverged", f.diverged},
                        {"integrity_failures", f.integrity_failures},
                        {"max_outbox_depth", f.max_outbox},
                        {"max_lag_s", f.max_lag},
                        {"peak_rss_kb", f.peak_rss},
                        {"broken", c.broken}};
    // Every sample, to see how memory and outbox depth moved over the run.
    auto& samples = j["samples"] = nlohmann::json::array();
    for (const auto& s : run.samples)
        samples.push_back(
            {{"t", s.t}, {"rss_kb", s.rss_kb}, {"outbox", s.outbox}, {"lag_s", s.lag_s}});
    std::ofstream(opt.report_json) << j.dump(2) << "\n";
}

// The promises broken, how to replay the run, and (LESTASH_SOAK_HOLD_SECONDS=N)
// Postgres and the daemons kept up that long to be looked at.
void report_broken(const Run& run) {
    const auto& opt = run.opt;
    std::cout << "\nPROMISES BROKEN (" << run.counters.broken.size() << "):\n";
    for (const auto& b : run.counters.broken) std::cout << "  - " << b << "\n";
    std::cout << "replay with: lestash-soak --seed " << opt.seed << " --duration " << opt.duration_s
              << " --replicas " << opt.replicas << (opt.kills ? "" : " --no-kills") << std::endl;
    if (const char* hold = std::getenv("LESTASH_SOAK_HOLD_SECONDS"); hold && *hold) {
        std::cout << "holding for " << hold << " s; Postgres: " << run.admin_conninfo << std::endl;
        std::this_thread::sleep_for(std::chrono::seconds(std::stoi(hold)));
    }
}

int run_soak(Options opt) {
    Run run;
    run.opt = opt;
    std::cout << "lestash-soak: seed " << opt.seed << ", " << opt.duration_s << " s, "
              << opt.replicas << " replicas, "
              << (opt.kills ? "a kill every ~" + std::to_string(opt.kill_interval_s) + " s"
                            : std::string("no kills"))
              << std::endl;

    test::TempDir temp;
    const fs::path dir = opt.keep_dir.empty() ? temp.path() : fs::path(opt.keep_dir);
    fs::create_directories(dir);
    std::cout << "logs and databases in " << dir.string()
              << (opt.keep_dir.empty() ? " (removed at the end)" : "") << std::endl;

    test::ThrowawayPostgres pg;
    std::unique_ptr<test::FaultProxy> proxy;
    start_replicas(run, dir, start_upstream(run, pg, proxy));

    // Whatever happens from here, every thread is joined before the
    // daemons and the server go.
    std::vector<std::thread> writers, faults;
    struct Joiner {
        std::vector<std::thread>* lists[2];
        ~Joiner() {
            stop_writers = stop_faults = stop_sampling = all_done = true;
            for (auto* l : lists)
                for (auto& t : *l)
                    if (t.joinable())
                        t.join();
        }
    } joiner{{&writers, &faults}};
    Findings f;
    f.load_seconds = run_load(run, proxy.get(), writers, faults);
    converge(run, f);
    check_memory_and_outboxes(run, f);
    check_ledger(run, f);
    stop_and_check_files(run, f);

    const auto net = network_counts(run, proxy.get());
    print_report(run, f, net);
    if (!opt.report_json.empty())
        write_report_json(run, f, net);
    if (!run.counters.broken.empty()) {
        report_broken(run);
        return 1;
    }
    std::cout << "\nall promises kept (seed " << opt.seed << ")" << std::endl;
    return 0;
}

void usage() {
    std::cout
        << "lestash-soak: replicas, app-like writers and faults for a while, then checks that\n"
           "every acknowledged write is everywhere exactly once and the replicas converged.\n\n"
           "  --seed N             random choices (default: random; always printed)\n"
           "  --duration SECONDS   how long to write and inject faults (default 180)\n"
           "  --replicas N         replicas, each with its own lestash-syncd (default 3)\n"
           "  --kill-interval S    mean seconds between SIGKILLs of replica a (default 1)\n"
           "  --sample-interval S  seconds between RSS / outbox samples (default 2)\n"
           "  --converge-deadline S  liveness bound for the end (default 600)\n"
           "  --no-kills, --no-network-faults, --no-postgres-restarts, --no-sqlite-faults\n"
           "  --report-json PATH   the report as JSON too\n"
           "  --keep-dir DIR       keep databases and daemon logs in DIR\n\n"
           "LESTASH_SYNCD=PATH runs that lestash-syncd instead of this build's.\n";
}

}  // namespace
}  // namespace lestash::soak

int main(int argc, char** argv) {
    using namespace lestash::soak;
    Options opt;
    opt.seed = std::random_device{}();
    opt.seed = (opt.seed << 32) ^ std::random_device{}();
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc)
                    throw std::invalid_argument(a + " needs a value");
                return argv[++i];
            };
            if (a == "--help" || a == "-h")
                return usage(), 0;
            else if (a == "--seed")
                opt.seed = std::stoull(value());
            else if (a == "--duration")
                opt.duration_s = std::stoi(value());
            else if (a == "--replicas")
                opt.replicas = std::stoi(value());
            else if (a == "--kill-interval")
                opt.kill_interval_s = std::stod(value());
            else if (a == "--sample-interval")
                opt.sample_interval_s = std::stod(value());
            else if (a == "--converge-deadline")
                opt.converge_deadline_s = std::stoi(value());
            else if (a == "--report-json")
                opt.report_json = value();
            else if (a == "--keep-dir")
                opt.keep_dir = value();
            else if (a == "--no-kills")
                opt.kills = false;
            else if (a == "--no-network-faults")
                opt.network_faults = false;
            else if (a == "--no-postgres-restarts")
                opt.pg_restarts = false;
            else if (a == "--no-sqlite-faults")
                opt.sqlite_faults = false;
            else
                throw std::invalid_argument("unknown option " + a + " (see --help)");
        }
        if (opt.replicas < 1 || opt.replicas > 26 || opt.duration_s < 1 ||
            opt.kill_interval_s <= 0 || opt.sample_interval_s <= 0)
            throw std::invalid_argument("--replicas 1-26, --duration and intervals above 0");
    } catch (const std::exception& e) {
        std::cerr << "lestash-soak: " << e.what() << "\n";
        return 2;
    }
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return run_soak(opt);
    } catch (const std::exception& e) {
        std::cerr << "lestash-soak: aborted: " << e.what() << "\nreplay with: lestash-soak --seed "
                  << opt.seed << " --duration " << opt.duration_s << "\n";
        return 1;
    }
}
