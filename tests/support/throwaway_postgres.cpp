#include "throwaway_postgres.hpp"

#include <cstdlib>
#include <stdexcept>

namespace lestash::test {

namespace {

namespace fs = std::filesystem;

std::string template_dir() {
    const char* dir = std::getenv("LESTASH_TEST_POSTGRES_TEMPLATE");
    return dir ? dir : "";
}

}  // namespace

ThrowawayCluster::ThrowawayCluster() {
    const auto from = template_dir();
    if (from.empty() || !fs::exists(fs::path(from) / "data" / "PG_VERSION"))
        return;
    copy_.emplace();
    // cp -a keeps the server account's ownership and the 0700 mode.
    const auto copied = run_command("cp -a '" + from + "/data' '" + copy_->file("data") + "'");
    if (copied.status != 0)
        throw std::runtime_error("cannot copy the Postgres template " + from + ":\n" +
                                 copied.output);
}

LocalPostgresOptions ThrowawayCluster::options() const {
    return LocalPostgresOptions{copy_ ? copy_->file("data") : "", true, false};
}

ThrowawayPostgres::~ThrowawayPostgres() {
    try {
        stop("immediate");  // nothing in it is kept
    } catch (...) {
    }
}

void make_postgres_template() {
    const auto dir = template_dir();
    if (dir.empty())
        throw std::runtime_error("LESTASH_TEST_POSTGRES_TEMPLATE names no directory");
    const auto building = dir + ".building";
    fs::remove_all(building);
    fs::create_directories(building);
    { LocalPostgres server(LocalPostgresOptions{building + "/data", true, false}); }
    fs::remove_all(dir);
    fs::rename(building, dir);
}

ThrowawayPostgres& shared_postgres() {
    static ThrowawayPostgres server;
    return server;
}

}  // namespace lestash::test
