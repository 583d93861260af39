// The engine's own commits do not wait for the disk (DiskDeferredTransaction:
// a push's bookkeeping, every apply). A power cut may therefore lose the
// last of them, always a suffix of the WAL: the frames after the last commit
// that waited for the disk. Here such cuts are made on copies of a replica's
// files, at every commit where a power cut could leave the WAL, and each
// copy must come back to exactly what Postgres has, with nothing sent twice.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "app_writer.hpp"
#include "sync_fixture.hpp"

using namespace lestash;
using namespace lestash::test;
namespace fs = std::filesystem;

namespace {

// Every commit on one connection: the WAL's frame count after it, and the
// connection's synchronous level it committed at. The WAL hook runs once
// the commit is over and may read the database; installing it also ends
// automatic checkpoints on this connection, so the WAL only grows and the
// database file stays as it was.
struct CommitLog {
    struct Commit {
        int frames;
        std::int64_t synchronous;
    };
    std::vector<Commit> commits;

    static int on_commit(void* self, sqlite3* db, const char*, int frames) {
        sqlite3_stmt* st = nullptr;
        std::int64_t level = -1;
        if (sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, nullptr) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            level = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        static_cast<CommitLog*>(self)->commits.push_back({frames, level});
        return SQLITE_OK;
    }
};

std::uint32_t big_endian(const std::string& bytes, size_t at) {
    std::uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    return v;
}

// Where a WAL ends after `frames` frames (its 32-byte header, then frames of
// a 24-byte header and a page each).
std::uintmax_t wal_bytes(const std::string& wal, int frames) {
    std::ifstream in(wal, std::ios::binary);
    std::string header(32, '\0');
    in.read(header.data(), 32);
    const std::uint32_t page = big_endian(header, 8);
    return 32 + static_cast<std::uintmax_t>(frames) * (24 + page);
}

// The replica's files as a power cut leaves them: the database file (no
// checkpoint ran since the cut point) and the WAL's first `keep` bytes;
// no -shm, which SQLite rebuilds from the WAL as after a reboot.
void power_cut_copy(const std::string& db, std::uintmax_t keep, const std::string& to) {
    fs::copy_file(db, to);
    fs::copy_file(db + "-wal", to + "-wal");
    fs::resize_file(to + "-wal", keep);
}

std::int64_t items_like(sqlite::Connection& db, const std::string& pattern) {
    sqlite::Statement st(db, "SELECT count(*) FROM items WHERE source_id LIKE ?");
    st.bind(1, pattern);
    return st.step() ? st.integer(0) : 0;
}

ItemFields post(const std::string& id) {
    ItemFields f;
    f.source_type = "bluesky";
    f.source_id = id;
    f.title = "Post " + id;
    f.content = "the text of " + id;
    f.author = "alice";
    return f;
}

}  // namespace

TEST_CASE_METHOD(TwoReplicas,
                 "a power cut after the engine's relaxed commits loses a suffix the protocol "
                 "recovers",
                 "[sync][durability]") {
    AppWriter app_a(a.path());
    app_a.upsert_item(post("before"));
    sync_until_quiet({&a, &b});

    CommitLog log;
    sqlite3_wal_hook(b.replica().db().handle(), &CommitLog::on_commit, &log);
    AppWriter app_b(b.path());
    CommitLog app_log;
    sqlite3_wal_hook(app_b.db().handle(), &CommitLog::on_commit, &app_log);
    REQUIRE(app_b.db().query_int("PRAGMA synchronous") >= 2);  // the app's commits wait
    // On B, the app writes a note (a random identity) and a post (named by
    // its natural key); on A, 30 posts and a tag, pushed.
    ItemFields note;
    note.content = "a note written on B";
    app_b.insert_item(note);
    app_b.upsert_item(post("b-post"));
    REQUIRE(app_log.commits.size() == 2);
    std::int64_t last_a = 0;
    for (int i = 0; i < 30; ++i) last_a = app_a.upsert_item(post("a-" + std::to_string(i)));
    app_a.add_tag(last_a, "from-a");
    a.sync();
    // B pushes its two items and applies A's rows: every commit of that on
    // B's engine connection.
    b.sync();
    sqlite3_wal_hook(b.replica().db().handle(), nullptr, nullptr);
    REQUIRE(b.replica().outbox().empty());
    REQUIRE(items_like(b.replica().db(), "a-%") == 30);
    REQUIRE_FALSE(log.commits.empty());
    CHECK(static_cast<std::uintmax_t>(wal_bytes(b.path() + "-wal", log.commits.back().frames)) ==
          fs::file_size(b.path() + "-wal"));

    // A power cut keeps the WAL up to the last commit that waited for the
    // disk (the app's, or the engine's own for the note's random identity)
    // or any relaxed commit after it.
    int durable = app_log.commits.back().frames;
    for (const auto& c : log.commits)
        if (c.synchronous >= 2)
            durable = c.frames;
    std::vector<int> cuts{durable};
    for (const auto& c : log.commits)
        if (c.frames > durable)
            cuts.push_back(c.frames);
    INFO("commits on B's engine connection: " << log.commits.size() << ", possible cuts "
                                              << cuts.size());
    REQUIRE(cuts.size() >= 3);  // the push's bookkeeping and an apply at least, relaxed

    bool lost_some = false;
    for (size_t i = 0; i < cuts.size(); ++i) {
        const auto copy = dir.file("cut-" + std::to_string(i) + ".db");
        power_cut_copy(b.path(), wal_bytes(b.path() + "-wal", cuts[i]), copy);
        TestReplica c(copy, up.daemon_conninfo);
        INFO("cut " << i << " after " << cuts[i] << " WAL frames");
        CHECK(items_like(c.replica().db(), "b-post") == 1);  // the app's commit waited
        lost_some = lost_some || items_like(c.replica().db(), "a-%") < 30;
        sync_until_quiet({&c});
        CHECK(c.replica().outbox().empty());
        CHECK(items_like(c.replica().db(), "a-%") == 30);
        require_converged(c);
    }
    CHECK(lost_some);  // the cuts did lose applied rows

    pqxx::connection admin(up.admin_conninfo);
    pqxx::nontransaction q(admin);
    // Nothing sent twice: B's note and post once each, A's 31 posts once.
    CHECK(q.exec1("SELECT count(*) FROM lestash.items")[0].as<std::int64_t>() == 33);
    sync_until_quiet({&a, &b});
    require_converged(a);
    require_converged(b);
}

TEST_CASE_METHOD(OneReplica, "verify --repair's re-fetch waits for the disk: nothing would redo it",
                 "[sync][durability][verify]") {
    AppWriter app(a.path());
    for (int i = 0; i < 5; ++i) app.upsert_item(post("p" + std::to_string(i)));
    a.sync();
    // A change Postgres never announced: only a verify finds it.
    shared_postgres().exec(
        "UPDATE lestash.items SET title = 'silently changed' WHERE source_id = 'p3'; "
        "DELETE FROM lestash.change_log;",
        up.name);
    CommitLog log;
    sqlite3_wal_hook(a.replica().db().handle(), &CommitLog::on_commit, &log);
    const auto repaired = a.engine().verify(true);
    sqlite3_wal_hook(a.replica().db().handle(), nullptr, nullptr);
    REQUIRE(repaired.tables.front().fetched == 1);
    // Nothing to push: the re-fetch's apply is the one commit, and it waited.
    REQUIRE(log.commits.size() == 1);
    CHECK(log.commits.back().synchronous >= 2);
    CHECK(a.replica().db().query_text("SELECT title FROM items WHERE source_id = 'p3'") ==
          "silently changed");
    CHECK(a.replica().db().query_int("PRAGMA synchronous") >= 2);
}
