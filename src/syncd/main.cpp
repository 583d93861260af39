// lestash-syncd: wires the pieces together. With no subcommand it runs as a
// daemon (one asio event loop for signals, file notices and systemd; one
// worker thread for SQLite and Postgres); --once syncs and exits; `migrate`
// applies the upstream schema; `verify` compares with Postgres.
#include <fcntl.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/common/proc.hpp"
#include "lestash_sync/control/control_server.hpp"
#include "lestash_sync/daemon/backoff.hpp"
#include "lestash_sync/daemon/command_line.hpp"
#include "lestash_sync/daemon/config.hpp"
#include "lestash_sync/daemon/sd_notify.hpp"
#include "lestash_sync/daemon/sync_worker.hpp"
#include "lestash_sync/daemon/wal_watcher.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/media/media_sync.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/upstream/local_postgres.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace {

using lestash::Config;

// Under systemd, journald adds timestamps itself: log level and message only.
void setup_logging(const Config& c) {
    auto logger = spdlog::stderr_color_mt("lestash-syncd");
    const bool journal = std::getenv("JOURNAL_STREAM") || std::getenv("INVOCATION_ID");
    logger->set_pattern(journal ? "%^%l%$: %v" : "%Y-%m-%d %H:%M:%S.%e %^%l%$: %v");
    logger->set_level(spdlog::level::from_str(c.log_level));
    spdlog::set_default_logger(logger);
}

lestash::MediaOptions media_options(const Config& c) {
    lestash::MediaOptions m;
    m.max_file_bytes = std::int64_t{c.media_max_file_mb} << 20;
    return m;
}

lestash::WorkerSettings worker_settings(const Config& c) {
    lestash::WorkerSettings w;
    w.attach.path = c.database;
    w.attach.tables = lestash::select_tables(c.tables);
    w.postgres = c.postgres;
    w.replica_name = c.replica_name;
    w.sync.push_batch = c.push_batch;
    w.sync.pull_batch = c.pull_batch;
    w.debounce = std::chrono::milliseconds(c.debounce_ms);
    w.safety_pull = std::chrono::seconds(c.safety_pull_seconds);
    w.max_backoff = std::chrono::seconds(c.max_backoff_seconds);
    w.response_timeout = std::chrono::seconds(c.response_timeout_seconds);
    w.media = media_options(c);
    return w;
}

// Peak resident memory of this process image.
double peak_rss_mib() {
    const auto m = lestash::proc::memory(::getpid());
    return m ? static_cast<double>(m->peak_rss_kb) / 1024.0 : 0;
}

// One daemon per database: an exclusive lock on a file beside it, held for
// the life of the process (released by the kernel even on SIGKILL).
class DatabaseLock {
  public:
    explicit DatabaseLock(const std::string& db_path) : path_(db_path + "-syncd.lock") {
        lestash::require_database_directory(db_path);
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ < 0 && errno == EROFS) {
            // Typically the systemd unit's sandbox: only ~/.config/lestash is
            // writable. A setting to change, not worth restarting (exit 2).
            const auto dir = std::filesystem::absolute(db_path).parent_path().string();
            throw lestash::ConfigError(
                "cannot create lock file " + path_ + ": " + std::strerror(EROFS) + " — " + dir +
                " is read-only to lestash-syncd. Under the systemd user unit only "
                "~/.config/lestash is writable: allow " +
                dir + " with `systemctl --user edit lestash-syncd` ([Service] ReadWritePaths=" +
                dir + "), or keep lestash.db in ~/.config/lestash");
        }
        if (fd_ < 0)
            throw lestash::LocalDatabaseError("cannot create lock file " + path_ + ": " +
                                              std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            char pid[32] = {};
            [[maybe_unused]] const auto n = ::pread(fd_, pid, sizeof pid - 1, 0);
            ::close(fd_);
            throw lestash::LocalDatabaseError(
                "another lestash-syncd (pid " + std::string(pid) + ") is already syncing " +
                db_path + " — stop it first (systemctl --user stop lestash-syncd)");
        }
        const std::string me = std::to_string(::getpid());
        [[maybe_unused]] const auto t = ::ftruncate(fd_, 0);
        [[maybe_unused]] const auto w = ::pwrite(fd_, me.data(), me.size(), 0);
    }
    ~DatabaseLock() {
        if (fd_ >= 0)
            ::close(fd_);
    }

  private:
    std::string path_;
    int fd_ = -1;
};

// A private Postgres for a machine with none configured (--local-postgres):
// Debian's server binaries, data under $XDG_DATA_HOME/lestash-sync/postgres
// (~/.local/share/...), a unix socket only (in a 0700 directory there), the
// migrations applied. It runs while this process runs and stops with it.
std::unique_ptr<lestash::LocalPostgres> start_private_postgres(Config& config) {
    const char* data_home = std::getenv("XDG_DATA_HOME");
    const char* home = std::getenv("HOME");
    const std::string root =
        (data_home && *data_home ? std::string(data_home)
                                 : std::string(home ? home : ".") + "/.local/share") +
        "/lestash-sync/postgres";
    std::filesystem::create_directories(root);
    std::unique_ptr<lestash::LocalPostgres> pg;
    try {
        pg = std::make_unique<lestash::LocalPostgres>(
            lestash::LocalPostgresOptions{root + "/data", false, true});
        lestash::Upstream admin(pg->conninfo("postgres"));
        admin.transact<pqxx::nontransaction>("creating database lestash",
                                             [](pqxx::nontransaction& q) {
                                                 if (q.exec("SELECT 1 FROM pg_database WHERE "
                                                            "datname = 'lestash'")
                                                         .empty())
                                                     q.exec("CREATE DATABASE lestash");
                                             });
    } catch (const std::exception& e) {
        throw lestash::Error(
            std::string("cannot start the private Postgres in ") + root + ": " + e.what() +
            " — is postgresql-15 installed (scripts/install-deps.sh)? Or configure "
            "[postgres] conninfo to use a server of your own");
    }
    config.postgres = pg->conninfo("lestash");
    lestash::apply_migrations(config.postgres);
    std::cerr << "lestash-syncd: private Postgres running (pid " << pg->pid() << ", data in "
              << root << "/data, socket in " << pg->socket_dir()
              << "); it stops when lestash-syncd stops\n";
    return pg;
}

// The running daemon: the pieces wired together, declared in the order
// they start, so they stop in the reverse order. One asio loop for signals,
// file notices, the control socket and systemd; one worker thread for SQLite
// and Postgres.
class Daemon {
  public:
    Daemon(const Config& config, const lestash::CommandLineOverrides& flags,
           std::string private_postgres)
        : flags_(flags),
          private_postgres_(std::move(private_postgres)),
          config_(config),
          lock_(config.database),
          worker_(worker_settings(config), status_),
          signals_(io_, SIGTERM, SIGINT, SIGHUP),
          watchdog_(io_) {
        spdlog::info(
            "attached to {} (replica {}){}", config.database, status_.snapshot().replica_id,
            config.postgres.empty()
                ? "; no Postgres configured ([postgres] conninfo or --postgres): capturing only"
                : ", syncing with " + lestash::describe_target(config.postgres));
        lestash::ControlOptions control;
        control.socket_path = config.socket_path;
        control.database_path = config.database;
        control.read_timeout = std::chrono::seconds(config.request_timeout_seconds);
        control_ = std::make_unique<lestash::ControlServer>(io_, control, status_, worker_);
        worker_.on_cycle([this] { asio::post(io_, [this] { publish_status(); }); });
        // Watching before the first cycle starts: a commit made while it
        // runs still raises an event (queued until the loop runs).
        watcher_ = std::make_unique<lestash::WalWatcher>(io_, config.database, [this] {
            status_.count_wakeup();
            worker_.local_change();
        });
    }

    int run() {
        worker_.start([this] {
            asio::post(io_, [this] {
                systemd_.ready();
                publish_status();
            });
        });
        wait_for_signal();
        if (const auto interval = systemd_.watchdog_interval())
            arm_watchdog(*interval);
        io_.run();
        spdlog::info("stopped");
        return 0;
    }

  private:
    void publish_status() {
        status_.count_wakeup();
        const auto summary = status_.snapshot().summary();
        if (summary != last_summary_)
            systemd_.status(summary);
        last_summary_ = summary;
        control_->status_changed();
    }

    void wait_for_signal() {
        signals_.async_wait([this](std::error_code ec, int sig) {
            if (ec)
                return;
            status_.count_wakeup();
            if (sig == SIGHUP) {
                reload();
                wait_for_signal();
                return;
            }
            spdlog::info("stopping: finishing the batch in flight");
            systemd_.stopping();
            control_->shutting_down();
            worker_.stop();
            io_.stop();
        });
    }

    // Every key applies but the database and the tables, which the log line
    // says need a restart (and keep their running values meanwhile).
    void reload() {
        systemd_.reloading();
        try {
            Config fresh = lestash::load_config(flags_);
            if (fresh.postgres.empty())
                fresh.postgres = private_postgres_;
            control_->reconfigure(fresh.socket_path,
                                  std::chrono::seconds(fresh.request_timeout_seconds));
            spdlog::get("lestash-syncd")->set_level(spdlog::level::from_str(fresh.log_level));
            worker_.reload(worker_settings(fresh));
            const auto restart = lestash::keys_needing_restart(config_, fresh);
            fresh.database = config_.database;
            fresh.tables = config_.tables;
            config_ = std::move(fresh);
            if (restart.empty())
                spdlog::info("configuration reloaded");
            else
                spdlog::warn(
                    "configuration reloaded; {} changed and {} a restart: systemctl --user "
                    "restart lestash-syncd",
                    restart, restart.find(" and ") == std::string::npos ? "needs" : "need");
        } catch (const lestash::Error& e) {
            spdlog::error("configuration not reloaded, keeping the old one: {}", e.what());
        }
        systemd_.ready();
    }

    // Pinged from the loop, but only while the worker is not stuck: a hung
    // cycle stops the pings and systemd restarts the daemon.
    void arm_watchdog(std::chrono::microseconds interval) {
        watchdog_.expires_after(interval / 2);
        watchdog_.async_wait([this, interval](std::error_code ec) {
            if (ec)
                return;
            status_.count_wakeup();
            if (!worker_.stuck_longer_than(interval))
                systemd_.watchdog();
            arm_watchdog(interval);
        });
    }

    const lestash::CommandLineOverrides& flags_;
    const std::string private_postgres_;
    Config config_;  // as running: the last one loaded, with the database and tables of start
    DatabaseLock lock_;
    lestash::StatusBoard status_;
    lestash::SystemdNotifier systemd_;
    asio::io_context io_;
    lestash::SyncWorker worker_;
    std::unique_ptr<lestash::ControlServer> control_;
    std::unique_ptr<lestash::WalWatcher> watcher_;
    asio::signal_set signals_;
    asio::steady_timer watchdog_;
    std::string last_summary_;
};

int run_once(const Config& c) {
    const auto t0 = std::chrono::steady_clock::now();
    lestash::Replica replica({c.database, lestash::select_tables(c.tables)});
    if (!c.replica_name.empty())
        replica.set_meta("replica_name", c.replica_name);
    if (c.postgres.empty()) {
        std::cout
            << "attached to " << replica.path() << " (replica " << replica.replica_id()
            << "): " << replica.outbox().depth()
            << " local changes waiting; no Postgres configured (--postgres), nothing synced\n";
        return 0;
    }
    // Transient errors (Postgres restarting, a dropped connection) are
    // retried a few times with backoff; nothing is lost meanwhile, the
    // outbox keeps every change until Postgres has it.
    lestash::Backoff backoff(std::chrono::seconds(8));
    std::pair<lestash::PushStats, lestash::PullStats> stats;
    for (;;) {
        try {
            lestash::Upstream upstream(c.postgres);
            lestash::SyncEngine engine(replica, upstream, {c.push_batch, c.pull_batch, {}, {}});
            stats = engine.sync_once();
            lestash::MediaSync media(replica, upstream, media_options(c));
            while (media.step().more) {
            }
            break;
        } catch (const lestash::UpstreamError& e) {
            if (!e.transient() || backoff.attempts() >= 5)
                throw;
            const auto delay = backoff.next();
            std::cerr << "lestash-syncd: " << e.what() << " — retrying in " << delay.count()
                      << " ms\n";
            std::this_thread::sleep_for(delay);
        }
    }
    const auto& [pushed, pulled] = stats;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "synced %s with %s: pushed %lld changes (%lld rows written, %lld deleted, %lld refused), "
        "pulled %lld changes (%lld rows applied, %lld deleted, %lld held for local edits) in "
        "%.2f s, peak RSS %.1f MiB\n",
        replica.path().c_str(), lestash::describe_target(c.postgres).c_str(),
        static_cast<long long>(pushed.entries), static_cast<long long>(pushed.upserted),
        static_cast<long long>(pushed.deleted), static_cast<long long>(pushed.dead_lettered),
        static_cast<long long>(pulled.changes), static_cast<long long>(pulled.applied),
        static_cast<long long>(pulled.deleted), static_cast<long long>(pulled.deferred), secs,
        peak_rss_mib());
    return 0;
}

int run_verify(const Config& c, bool repair) {
    const auto t0 = std::chrono::steady_clock::now();
    if (c.postgres.empty())
        throw lestash::ConfigError(
            "verify needs Postgres: set [postgres] conninfo in sync.toml, or run "
            "`lestash-syncd verify --postgres '<conninfo>'`");
    lestash::Replica replica({c.database, lestash::select_tables(c.tables)});
    lestash::Upstream upstream(c.postgres);
    lestash::SyncEngine engine(replica, upstream);
    const auto report = engine.verify(repair);
    lestash::MediaSync media(replica, upstream, media_options(c));
    const auto files = media.verify(repair);
    for (const auto& t : report.tables) {
        std::printf("%-16s %7lld local %7lld upstream  %s", t.table.c_str(),
                    static_cast<long long>(t.local_rows), static_cast<long long>(t.upstream_rows),
                    t.matches() ? "same\n" : "DIFFERENT:");
        if (t.matches())
            continue;
        std::printf(" %zu missing here, %zu missing upstream, %zu with other values%s\n",
                    t.missing_locally.size(), t.missing_upstream.size(), t.different.size(),
                    repair ? (" (repaired: " + std::to_string(t.pushed) + " pushed, " +
                              std::to_string(t.fetched) + " fetched)")
                                 .c_str()
                           : "");
        for (const auto* list : {&t.missing_locally, &t.missing_upstream, &t.different})
            for (const auto& uuid : *list) std::printf("    %s\n", uuid.c_str());
    }
    std::printf("%-13s %7lld named     %s", "media files", static_cast<long long>(files.files),
                files.matches() ? "same\n" : "DIFFERENT:");
    if (!files.matches())
        std::printf(" %zu missing here, %zu missing upstream, %zu with other contents%s\n",
                    files.missing_locally.size(), files.missing_upstream.size(),
                    files.different.size(), repair ? " (queued again)" : "");
    for (const auto* list : {&files.missing_locally, &files.missing_upstream, &files.different})
        for (const auto& path : *list) std::printf("    %s\n", path.c_str());
    if (!files.unavailable.empty())
        std::printf("%zu media files are nowhere (lost where they were made?)\n",
                    files.unavailable.size());
    if (report.pending_local_rows)
        std::printf("%lld local changes not pushed yet were left out\n",
                    static_cast<long long>(report.pending_local_rows));
    std::printf("compared in %.2f s, peak RSS %.1f MiB\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                peak_rss_mib());
    if (report.matches() && files.matches())
        return 0;
    if (!repair)
        std::printf("run again with --repair to fetch the differing rows again\n");
    return repair ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
    // A file size limit (ulimit -f, a quota) reached while SQLite writes
    // must be an error SQLite reports and the worker retries with backoff,
    // not SIGXFSZ, whose default action kills the daemon (found by the soak).
    std::signal(SIGXFSZ, SIG_IGN);
    lestash::CommandLine command_line(
        "lestash-syncd", "lestash-syncd: keeps a Le Stash database in sync with Postgres");
    CLI::App& app = command_line.app();
    lestash::CommandLineOverrides flags;
    lestash::add_config_flags(app, flags);
    bool once = false;
    app.add_flag("--once", once, "attach, push pending changes, pull until caught up, exit");
    bool local_postgres = false;
    app.add_flag(
        "--local-postgres", local_postgres,
        "when no Postgres is configured, run a private one under ~/.local/share/lestash-sync");
    auto* migrate =
        app.add_subcommand("migrate", "apply the upstream schema (needs an owner role)");
    auto* verify = app.add_subcommand("verify", "compare this replica with Postgres, row by row");
    bool repair = false;
    verify->add_flag("--repair", repair, "fetch the rows that differ again");
    if (const auto done = command_line.parse(argc, argv))
        return *done;

    try {
        Config config = lestash::load_config(flags);
        std::unique_ptr<lestash::LocalPostgres> private_postgres;
        if (local_postgres && config.postgres.empty() && !*migrate)
            private_postgres = start_private_postgres(config);
        if (*migrate) {
            if (config.postgres.empty())
                throw lestash::ConfigError(std::string("migrate needs Postgres: run ") +
                                           lestash::kMigrateCommand);
            const int version = lestash::apply_migrations(config.postgres);
            std::cout << "upstream schema at " << lestash::describe_target(config.postgres)
                      << " is at version " << version << "\n";
            return 0;
        }
        if (*verify)
            return run_verify(config, repair);
        if (once)
            return run_once(config);
        setup_logging(config);
        return Daemon(config, flags, private_postgres ? config.postgres : std::string()).run();
    } catch (const lestash::ConfigError& e) {
        std::cerr << "lestash-syncd: " << e.what() << "\n";
        return 2;
    } catch (const lestash::Error& e) {
        std::cerr << "lestash-syncd: " << e.what() << "\n";
        return 1;
    }
}
