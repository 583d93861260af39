// lestash-syncd: wires the engine together. Attaches to the app's database and
// (with --once) reports what is waiting to be synced.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "lestash_sync/error.hpp"
#include "lestash_sync/paths.hpp"
#include "lestash_sync/replica.hpp"

int main(int argc, char** argv) {
    CLI::App app{"lestash-syncd: keeps a Le Stash database in sync with Postgres"};
    std::string db_path = lestash::default_database_path();
    bool once = false;
    app.add_option("--db", db_path, "Le Stash database (default ~/.config/lestash/lestash.db)");
    app.add_flag("--once", once, "attach, sync what is pending, print a summary and exit");
    CLI11_PARSE(app, argc, argv);

    try {
        lestash::Replica replica({db_path});
        std::cout << "attached to " << replica.path() << " (replica " << replica.replica_id()
                  << "): " << replica.outbox_depth() << " local changes waiting in the outbox\n";
        return 0;
    } catch (const lestash::Error& e) {
        std::cerr << "lestash-syncd: " << e.what() << "\n";
        return 1;
    }
}
