// The throwaway Postgres fixture itself: reachable over loopback TCP and its
// unix socket, and gone (by pid) when the fixture ends.
#include <signal.h>
#include <catch2/catch.hpp>

#include <pqxx/pqxx>

#include "throwaway_postgres.hpp"

using namespace lestash::test;

TEST_CASE("a throwaway Postgres serves loopback and its socket, and stops by pid", "[postgres]") {
    pid_t pid = -1;
    {
        ThrowawayPostgres pg;
        pid = pg.pid();
        REQUIRE(pid > 0);
        pqxx::connection tcp(pg.conninfo());
        pqxx::work w(tcp);
        CHECK(w.exec1("SELECT current_setting('server_version_num')::int / 10000")[0].as<int>() >=
              13);
        CHECK(w.exec1("SELECT inet_server_addr()::text")[0].as<std::string>() == "127.0.0.1/32");
        pqxx::connection unix_socket("host=" + pg.socket_dir() + " port=" +
                                     std::to_string(pg.port()) + " user=postgres dbname=postgres");
        CHECK(unix_socket.is_open());
    }
    CHECK(::kill(pid, 0) == -1);
}

TEST_CASE("roles other than the superuser must give their password over TCP", "[postgres]") {
    auto& pg = shared_postgres();
    pg.exec(
        "DO $$ BEGIN CREATE ROLE fixture_probe LOGIN PASSWORD 'right'; EXCEPTION WHEN "
        "duplicate_object THEN NULL; END $$");
    CHECK_NOTHROW(pqxx::connection(pg.conninfo_as("fixture_probe", "right")));
    CHECK_THROWS_WITH(pqxx::connection(pg.conninfo_as("fixture_probe", "wrong")),
                      Catch::Contains("password authentication failed"));
}

// Not a test: CTest's fixture postgres-template runs it first, so that every
// other test process copies one cluster instead of running initdb
// (tests/CMakeLists.txt). Hidden, so only that asks for it.
TEST_CASE("make the Postgres cluster the other test processes copy", "[.][postgres-template]") {
    make_postgres_template();
    CHECK(ThrowawayPostgres().running());
}
