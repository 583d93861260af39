// lestash-syncd: wires the engine together. `--once` attaches, pushes what is
// pending, pulls until caught up, prints a one-line summary and exits;
// `migrate` applies the upstream schema.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>

#include "lestash_sync/error.hpp"
#include "lestash_sync/paths.hpp"
#include "lestash_sync/replica.hpp"
#include "lestash_sync/sync_engine.hpp"
#include "lestash_sync/upstream.hpp"

namespace {

struct Options {
    std::string db_path = lestash::default_database_path();
    std::string postgres;
    std::string replica_name;
    bool once = false;
};

// Peak resident memory of this process image (VmHWM; unlike getrusage it
// does not count the parent's pages a fork started with).
double peak_rss_mib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0)
            return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

int run_verify(const Options& o, bool repair) {
    lestash::Replica replica({o.db_path});
    lestash::Upstream upstream(o.postgres);
    lestash::SyncEngine engine(replica, upstream);
    const auto report = engine.verify(repair);
    for (const auto& t : report.tables) {
        std::printf("%-13s %7lld local %7lld upstream  %s", t.table.c_str(),
                    static_cast<long long>(t.local_rows), static_cast<long long>(t.upstream_rows),
                    t.matches() ? "same\n" : "DIFFERENT:");
        if (t.matches())
            continue;
        std::printf(" %zu missing here, %zu missing upstream, %zu with other values%s\n",
                    t.missing_locally.size(), t.missing_upstream.size(), t.different.size(),
                    repair ? " (repaired)" : "");
        for (const auto* list : {&t.missing_locally, &t.missing_upstream, &t.different})
            for (const auto& uuid : *list) std::printf("    %s\n", uuid.c_str());
    }
    if (report.pending_local_rows)
        std::printf("%lld local changes not pushed yet were left out\n",
                    static_cast<long long>(report.pending_local_rows));
    if (report.matches())
        return 0;
    if (!repair)
        std::printf("run again with --repair to fetch the differing rows again\n");
    return repair ? 0 : 3;
}

int run_once(const Options& o) {
    const auto t0 = std::chrono::steady_clock::now();
    lestash::Replica replica({o.db_path});
    if (!o.replica_name.empty())
        replica.set_meta("replica_name", o.replica_name);
    if (o.postgres.empty()) {
        std::cout
            << "attached to " << replica.path() << " (replica " << replica.replica_id()
            << "): " << replica.outbox_depth()
            << " local changes waiting; no Postgres configured (--postgres), nothing synced\n";
        return 0;
    }
    lestash::Upstream upstream(o.postgres);
    lestash::SyncEngine engine(replica, upstream);
    const auto [pushed, pulled] = engine.sync_once();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "synced %s with %s: pushed %lld changes (%lld rows written, %lld deleted, %lld refused), "
        "pulled %lld changes (%lld rows applied, %lld deleted, %lld held for local edits) in "
        "%.2f s, peak RSS %.1f MiB\n",
        replica.path().c_str(), upstream.target().c_str(), static_cast<long long>(pushed.entries),
        static_cast<long long>(pushed.upserted), static_cast<long long>(pushed.deleted),
        static_cast<long long>(pushed.dead_lettered), static_cast<long long>(pulled.changes),
        static_cast<long long>(pulled.applied), static_cast<long long>(pulled.deleted),
        static_cast<long long>(pulled.deferred), secs, peak_rss_mib());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"lestash-syncd: keeps a Le Stash database in sync with Postgres"};
    Options o;
    app.add_option("--db", o.db_path, "Le Stash database (default ~/.config/lestash/lestash.db)");
    app.add_option("--postgres", o.postgres, "libpq conninfo or service=NAME of the upstream");
    app.add_option("--replica", o.replica_name, "name of this replica (default: hostname-based)");
    app.add_flag("--once", o.once, "attach, push pending changes, pull until caught up, exit");
    auto* migrate =
        app.add_subcommand("migrate", "apply the upstream schema (needs an owner role)");
    std::string migrate_conninfo;
    migrate
        ->add_option("--postgres", migrate_conninfo,
                     "conninfo of a role that may create the schema")
        ->required();
    auto* verify = app.add_subcommand("verify", "compare this replica with Postgres, row by row");
    bool repair = false;
    verify->add_flag("--repair", repair, "fetch the rows that differ again");
    CLI11_PARSE(app, argc, argv);

    try {
        if (*migrate) {
            const int version = lestash::apply_migrations(migrate_conninfo);
            std::cout << "upstream schema at " << lestash::describe_target(migrate_conninfo)
                      << " is at version " << version << "\n";
            return 0;
        }
        if (*verify) {
            if (o.postgres.empty())
                throw lestash::ConfigError("verify needs --postgres");
            return run_verify(o, repair);
        }
        return run_once(o);
    } catch (const lestash::Error& e) {
        std::cerr << "lestash-syncd: " << e.what() << "\n";
        return 1;
    }
}
