// The app keeps working while the daemon holds the database: another process
// (the sqlite3 shell, as a user would run it) never sees "database is locked".
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/replica/write_pacer.hpp"
#include "temp_dir.hpp"

using namespace lestash;
using namespace lestash::test;
namespace fs = std::filesystem;

TEST_CASE("a second process writing while the engine works never sees database is locked",
          "[concurrency]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica({path});

    std::atomic<bool> done{false};
    std::atomic<int> shell_seen{0};
    std::thread engine([&] {
        // The engine's own cycle: schema check, outbox read, short applies.
        int n = 0;
        WritePacer pacer(path);
        while (!done) {
            pacer.before_write();
            const auto t0 = std::chrono::steady_clock::now();
            replica.follow_schema_changes();
            replica.outbox().read(0, 500);
            ApplyScope apply(replica.db());
            replica.db().exec(
                "INSERT INTO items (source_type, source_id, content) VALUES "
                "('remote', 'r" +
                std::to_string(n++) + "', 'remote row')");
            apply.commit();
            pacer.after_write(std::chrono::steady_clock::now() - t0);
        }
    });
    // What the pacer asks before each gap, watched while the shell runs: it
    // must see the shell (so the gaps are left), not only the shell's rows.
    // Polled apart from the engine loop, which is slow under the sanitizers.
    std::thread watcher([&] {
        while (!done) {
            if (other_process_has_open(path))
                ++shell_seen;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    // Python's sqlite3 module waits 5 s on a lock; the shell's .timeout is the same knob.
    std::string script = ".timeout 5000\n";
    for (int i = 0; i < 200; ++i)
        script += "INSERT INTO items (source_type, source_id, content) VALUES ('shell', 's" +
                  std::to_string(i) + "', 'from the shell');\n";
    const std::string script_path = dir.file("writes.sql");
    {
        std::ofstream out(script_path);
        out << script;
    }
    CommandResult shell;
    for (int round = 0; round < 3; ++round) {
        shell = run_command("sqlite3 -bail " + path + " < " + script_path +
                            " && sqlite3 -cmd \".timeout 5000\" " + path +
                            " \"DELETE FROM items WHERE source_type = 'shell'\"");
        if (shell.status != 0)
            break;
    }
    done = true;
    engine.join();
    watcher.join();
    INFO(shell.output);
    CHECK(shell.status == 0);
    CHECK(shell.output.find("locked") == std::string::npos);
    CHECK(shell_seen > 0);
    // 3 rounds of 200 inserts and a delete of 200 rows each, all captured.
    CHECK(replica.db().query_int("SELECT count(*) FROM _lestash_sync_outbox WHERE tbl = 'items'") ==
          3 * 200 * 2);
}

TEST_CASE("the pacer sees whether another process has the database open", "[concurrency]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    Replica replica({path});
    replica.db().query_int("SELECT count(*) FROM items");  // connected: the -shm is open

    SECTION("alone, then with the sqlite3 shell connected, then alone again") {
        CHECK_FALSE(other_process_has_open(path));
        ConnectedShell shell(path);
        CHECK(eventually([&] { return other_process_has_open(path); }));
        CHECK(shell.quit() == 0);
        CHECK_FALSE(other_process_has_open(path));
    }
    SECTION("a shell waiting for the write lock is seen") {
        replica.db().exec("BEGIN IMMEDIATE");
        std::fflush(nullptr);
        FILE* waiting = ::popen(("sqlite3 -cmd '.timeout 20000' '" + path +
                                 "' \"INSERT INTO items (source_type, source_id, content) "
                                 "VALUES ('shell', 'w', 'waited') \" 2>&1")
                                    .c_str(),
                                "r");
        REQUIRE(waiting != nullptr);
        const bool seen = eventually([&] { return other_process_has_open(path); });
        replica.db().exec("COMMIT");
        CHECK(::pclose(waiting) == 0);
        CHECK(seen);
        CHECK_FALSE(other_process_has_open(path));
    }
    SECTION("a database this process has no connection to: cannot tell, so assume someone") {
        const auto other = dir.file("other.db");
        create_lestash_db(other, 11);
        std::ofstream(other + "-shm");  // as a crashed process leaves it: nobody holds it
        CHECK(other_process_has_open(other));
        CHECK(other_process_has_open(dir.file("never-created.db")));
    }
    SECTION("the database reached through a symbolic link") {
        const auto link = dir.file("link.db");
        fs::create_symlink(path, link);
        CHECK_FALSE(other_process_has_open(link));
    }
}
