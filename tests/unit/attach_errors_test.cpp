// Bad input when attaching: each case gets a clear error naming the file and
// what to do, and nothing is written.
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <thread>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "temp_dir.hpp"

using namespace lestash;
using namespace lestash::test;
namespace fs = std::filesystem;

TEST_CASE("a file that is not a SQLite database is refused and left untouched", "[attach]") {
    TempDir dir;
    const auto path = dir.file("notes.txt");
    std::ofstream(path) << "just some text, not a database at all\n";
    const auto before = read_file(path);
    CHECK_THROWS_WITH(Replica({path}), Catch::Contains(path) && Catch::Contains("not a database") &&
                                           Catch::Contains("is the path right"));
    CHECK(read_file(path) == before);
    CHECK_FALSE(fs::exists(path + "-wal"));
}

TEST_CASE("a database without an items table is refused and gets no daemon objects", "[attach]") {
    TempDir dir;
    const auto path = dir.file("other.db");
    {
        sqlite::Connection db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
    }
    CHECK_THROWS_AS(Replica({path}), SchemaError);
    CHECK_THROWS_WITH(Replica({path}),
                      Catch::Contains(path) && Catch::Contains("not a Le Stash database"));
    sqlite::Connection db(path, SQLITE_OPEN_READONLY);
    CHECK(db.query_int("SELECT count(*) FROM sqlite_master") == 1);
}

TEST_CASE("a path in a missing directory is refused and nothing is created", "[attach]") {
    TempDir dir;
    const auto path = dir.file("no/such/dir/lestash.db");
    CHECK_THROWS_WITH(Replica({path}),
                      Catch::Contains("does not exist") && Catch::Contains("mkdir -p"));
    CHECK_FALSE(fs::exists(dir.file("no")));
}

TEST_CASE("a read-only database is refused with a hint about permissions", "[attach]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    ::chmod(path.c_str(), 0444);
    ::chmod(dir.path().c_str(), 0755);
    const auto before = read_file(path);
    // Root ignores file permissions, so the attach runs in a child that
    // drops to an unprivileged user when the tests run as root.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::geteuid() == 0) {
            const passwd* pw = ::getpwnam("nobody");
            if (!pw || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
                _exit(3);
        }
        try {
            Replica r({path});
            _exit(0);
        } catch (const LocalDatabaseError& e) {
            const std::string what = e.what();
            _exit(what.find("read-only") != std::string::npos &&
                          what.find(path) != std::string::npos &&
                          what.find("permissions") != std::string::npos
                      ? 42
                      : 1);
        } catch (...) {
            _exit(2);
        }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 42);
    CHECK(read_file(path) == before);
}

// Regression (found by the soak): the attach's first read ran before the busy
// timeout was set, so a daemon (re)started while another connection held a
// lock a reader has to wait for exited at once with "database is locked".
// An exclusive-mode connection stands in for that lock here, deterministically.
TEST_CASE("attaching waits out a lock another connection holds, then says what held it",
          "[attach][busy]") {
    TempDir dir;
    const auto path = dir.file("lestash.db");
    create_lestash_db(path, 11);
    auto holder = std::make_unique<sqlite::Connection>(path, SQLITE_OPEN_READWRITE);
    holder->exec("PRAGMA locking_mode = EXCLUSIVE");
    holder->exec("BEGIN EXCLUSIVE");

    SECTION("a lock released within the busy timeout is waited for") {
        std::thread release([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            holder.reset();  // closing lets the lock go
        });
        CHECK_NOTHROW(Replica({path}));
        release.join();
    }
    SECTION("a lock held past it is an error that says so, not a wrong path") {
        AttachOptions options{path};
        options.busy_timeout_ms = 200;
        CHECK_THROWS_WITH(Replica(options), Catch::Contains(path) &&
                                                Catch::Contains("kept it locked") &&
                                                !Catch::Contains("is the path right"));
    }
}
