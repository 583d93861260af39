// Media files travel (issue 15, part B): in-process replicas with a real
// Postgres, real files, the fault proxy, and real daemons for the round
// trip. Each replica's database is in a folder of its own, so each has its
// own media folder beside it.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "fault_proxy.hpp"
#include "lestash_sync/common/sha256.hpp"
#include "lestash_sync/media/media_sync.hpp"
#include "lestash_sync/media_store/media_path.hpp"
#include "sync_fixture.hpp"

namespace lestash::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::vector<std::string> kTables = {"items",   "item_history", "tags",      "item_tags",
                                          "sources", "sync_log",     "item_media"};

// Bytes that do not compress, the same for a seed.
std::string random_bytes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; i += 8) {
        const auto v = rng();
        std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, n - i));
    }
    return out;
}

// A small JPEG-shaped image: SOI, a JFIF header, noise, EOI.
std::string image_bytes(std::uint64_t seed) {
    return std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00", 11) + random_bytes(37'000, seed) +
           std::string("\xFF\xD9", 2);
}

std::optional<std::string> file_digest(const fs::path& p) {
    if (!fs::exists(p))
        return std::nullopt;
    return sha256_hex(read_file(p.string()));
}

// `eventually`, with the daemons' logs when it does not happen.
void require_eventually(const std::function<bool()>& condition,
                        const std::vector<DaemonProcess*>& daemons,
                        std::chrono::seconds deadline = 60s) {
    if (eventually(condition, deadline))
        return;
    std::string logs;
    for (auto* d : daemons) logs += "--- pid " + std::to_string(d->pid()) + ":\n" + d->log();
    FAIL("gave up waiting; the daemons' logs:\n" << logs);
}

nlohmann::json status_of(const TempDir& dir, const std::string& name) {
    const auto r = run_command(std::string(LESTASH_CLI_PATH) + " --socket " +
                               dir.file(name + ".sock") + " --json status");
    INFO(r.output);
    REQUIRE(r.status == 0);
    return nlohmann::json::parse(r.output);
}

std::int64_t pg_int(const UpstreamDatabase& up, const std::string& sql) {
    pqxx::connection c(up.admin_conninfo);
    pqxx::nontransaction q(c);
    return q.exec1(sql)[0].as<std::int64_t>();
}

// One replica in its own folder, its engine and its media sync, in process.
struct Peer {
    std::string db;
    std::unique_ptr<Replica> replica;
    std::unique_ptr<Upstream> upstream;
    std::unique_ptr<SyncEngine> engine;
    std::unique_ptr<MediaSync> media;
    MediaOptions options;
    std::string conninfo;

    Peer(const TempDir& dir, const std::string& name, std::string conninfo_, MediaOptions o = {})
        : db(dir.file(name + "/lestash.db")),
          options(std::move(o)),
          conninfo(std::move(conninfo_)) {
        fs::create_directories(fs::path(db).parent_path());
        create_lestash_db(db, 11);
        replica = std::make_unique<Replica>(AttachOptions{db, select_tables(kTables)});
        connect();
    }
    // As the worker does after a lost connection: everything made again.
    void connect() {
        media.reset();
        engine.reset();
        upstream = std::make_unique<Upstream>(conninfo);
        engine = std::make_unique<SyncEngine>(*replica, *upstream);
        media = std::make_unique<MediaSync>(*replica, *upstream, options);
    }
    // Slices until nothing is due now; the counts of all of them.
    MediaStep move_files() {
        MediaStep total;
        for (int i = 0; i < 100000; ++i) {
            const auto s = media->step();
            total.uploaded += s.uploaded;
            total.downloaded += s.downloaded;
            total.removed += s.removed;
            total.chunks_sent += s.chunks_sent;
            total.chunks_skipped += s.chunks_skipped;
            total.chunks_fetched += s.chunks_fetched;
            if (!s.more)
                return total;
        }
        FAIL("the media steps never settled");
        return total;
    }
    fs::path file(const std::string& relative) const { return media_root(db) / relative; }
    MediaCounts counts() { return media->counts(); }
};

// A pushes its rows and uploads its files; B pulls the rows and downloads.
void carry(Peer& from, Peer& to) {
    from.engine->sync_once();
    from.move_files();
    to.engine->sync_once();
    to.media->files_arrived();
    to.move_files();
}

// The peer's files moved until the proxy's cut stops them, which surfaces as
// a transient error, as in the worker.
void expect_cut(Peer& peer, const std::string& what) {
    try {
        peer.move_files();
        FAIL("the cut did not reach " << what);
    } catch (const UpstreamError& e) {
        CHECK(e.transient());
    }
}

ItemFields note(const std::string& id) {
    ItemFields item;
    item.source_id = id;
    item.content = "a note with an attachment " + id;
    return item;
}

struct TwoPeers {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    Peer a{dir, "a", up.daemon_conninfo}, b{dir, "b", up.daemon_conninfo};
};

}  // namespace

TEST_CASE("media files arrive byte-identical at the same path, stored once upstream", "[media]") {
    TwoPeers p;
    AppWriter app(p.a.db);
    const auto photo = image_bytes(1);
    const auto pdf = random_bytes(3 * (1 << 20) + 12345, 2);  // four chunks, the last short
    const auto item = app.upsert_item(note("n1"));
    const auto photo_path = app.save_media(item, photo, ".jpg");
    const auto pdf_path = app.save_media(item, pdf, ".pdf");
    // The same picture attached to a second item: another path, one content.
    const auto other = app.upsert_item(note("n2"));
    const auto copy_path = app.save_media(other, photo, ".jpg");
    const auto empty_path = app.save_media(other, "", ".txt");

    p.a.engine->sync_once();
    const auto sent = p.a.move_files();
    CHECK(sent.uploaded == 4);
    CHECK(sent.chunks_sent == 1 + 4);  // the copy and the empty file send no chunk
    CHECK(p.a.counts().synced == 4);
    CHECK(pg_int(p.up, "SELECT count(*) FROM lestash.media_blobs WHERE complete") == 3);
    CHECK(pg_int(p.up, "SELECT count(*) FROM lestash.media_files") == 4);
    CHECK(p.a.counts().upstream_bytes == static_cast<std::int64_t>(photo.size() + pdf.size()));

    p.b.engine->sync_once();
    const auto got = p.b.move_files();
    CHECK(got.downloaded == 4);
    for (const auto& [path, bytes] :
         {std::pair{photo_path, photo}, {pdf_path, pdf}, {copy_path, photo}, {empty_path, ""}}) {
        INFO(path);
        CHECK(file_digest(p.b.file(path)) == sha256_hex(bytes));
        CHECK_FALSE(fs::exists(partial_path(p.b.file(path))));
    }
    CHECK(p.b.counts().synced == 4);
    CHECK(p.b.counts().to_download == 0);
    // Both sides agree, file by file.
    for (auto* peer : {&p.a, &p.b}) {
        const auto report = peer->media->verify(false);
        CHECK(report.files == 4);
        CHECK(report.matches());
        CHECK(report.unavailable.empty());
    }
}

TEST_CASE(
    "a file missing at its origin is reported and retried, the other replica keeps the "
    "row and gets the file once it appears",
    "[media]") {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    MediaOptions quick;
    quick.first_retry = 0s;  // every step retries, so the retries can be counted
    Peer a(dir, "a", up.daemon_conninfo, quick), b(dir, "b", up.daemon_conninfo);
    AppWriter app(a.db);
    const auto item = app.upsert_item(note("n1"));
    const auto bytes = image_bytes(7);
    const auto path = app.save_media(item, bytes, ".jpg", /*write_file=*/false);

    // A's steps one by one: with no wait between retries it is always due.
    a.engine->sync_once();
    a.media->step();
    CHECK(a.counts().missing == 1);
    b.engine->sync_once();
    b.move_files();
    CHECK(b.counts().waiting == 1);
    CHECK(sqlite::Connection(b.db, SQLITE_OPEN_READONLY)
              .query_int("SELECT count(*) FROM "
                         "item_media") == 1);
    const auto attempts = [](const std::string& db) {
        return sqlite::Connection(db, SQLITE_OPEN_READONLY)
            .query_int("SELECT attempts FROM _lestash_sync_media");
    };
    const auto before = attempts(a.db);
    a.media->step();
    a.media->step();
    CHECK(attempts(a.db) == before + 2);
    // B, with the default backoff, does not ask again at once.
    const auto waited = attempts(b.db);
    b.media->step();
    CHECK(attempts(b.db) == waited);

    fs::create_directories(a.file(path).parent_path());
    std::ofstream(a.file(path), std::ios::binary) << bytes;
    CHECK(a.media->step().uploaded == 1);
    CHECK(a.counts().missing == 0);
    b.media->files_arrived();
    b.move_files();
    CHECK(file_digest(b.file(path)) == sha256_hex(bytes));
}

TEST_CASE("deleting the item removes its files on the receiver, not at the origin", "[media]") {
    TwoPeers p;
    AppWriter app(p.a.db);
    const auto item = app.upsert_item(note("n1"));
    const auto keep = app.upsert_item(note("n2"));
    const auto first = app.save_media(item, image_bytes(3), ".jpg");
    const auto second = app.save_media(item, random_bytes(5000, 4), ".pdf");
    const auto kept = app.save_media(keep, image_bytes(5), ".jpg");
    carry(p.a, p.b);
    REQUIRE(fs::exists(p.b.file(first)));
    REQUIRE(fs::exists(p.b.file(second)));

    app.delete_item(item);  // cascades to its item_media rows
    carry(p.a, p.b);
    CHECK_FALSE(fs::exists(p.b.file(first)));
    CHECK_FALSE(fs::exists(p.b.file(second)));
    CHECK_FALSE(fs::exists(p.b.file(first).parent_path()));  // its folder, now empty
    CHECK(fs::exists(p.b.file(kept)));
    CHECK(fs::exists(p.a.file(first)));  // the app's own files are the app's business
    CHECK(fs::exists(p.a.file(second)));
    CHECK(p.b.counts().synced == 1);

    // Upstream, once no row has named them for the grace period.
    pqxx::connection admin(p.up.admin_conninfo);
    for (int round = 0; round < 2; ++round)
        pqxx::nontransaction(admin).exec("SELECT * FROM lestash.gc_media('0 seconds')");
    CHECK(pg_int(p.up, "SELECT count(*) FROM lestash.media_files") == 1);
    CHECK(pg_int(p.up, "SELECT count(*) FROM lestash.media_blobs") == 1);
}

TEST_CASE("a file already at the path is never overwritten, and not removed with the row",
          "[media]") {
    TwoPeers p;
    AppWriter app(p.a.db);
    const auto item = app.upsert_item(note("n1"));
    const auto same = app.save_media(item, image_bytes(8), ".jpg");
    const auto other = app.save_media(item, image_bytes(9), ".jpg");
    p.a.engine->sync_once();
    p.a.move_files();
    // B's own app already wrote these paths: one with the same bytes, one
    // with other bytes.
    for (const auto& [path, bytes] :
         {std::pair{same, image_bytes(8)}, {other, std::string("something else")}}) {
        fs::create_directories(p.b.file(path).parent_path());
        std::ofstream(p.b.file(path), std::ios::binary) << bytes;
    }
    p.b.engine->sync_once();
    p.b.move_files();
    CHECK(p.b.counts().synced == 1);     // present
    CHECK(p.b.counts().different == 1);  // left alone, reported
    CHECK(read_file(p.b.file(other).string()) == "something else");
    const auto report = p.b.media->verify(false);
    CHECK(report.different == std::vector<std::string>{other});

    app.delete_item(item);
    carry(p.a, p.b);
    CHECK(fs::exists(p.b.file(same)));  // not written by the daemon: not removed
    CHECK(fs::exists(p.b.file(other)));
}

TEST_CASE("files over the size limit stay here and are counted, bad paths are never touched",
          "[media]") {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    MediaOptions small;
    small.max_file_bytes = 1 << 20;
    Peer a(dir, "a", up.daemon_conninfo, small), b(dir, "b", up.daemon_conninfo);
    AppWriter app(a.db);
    const auto item = app.upsert_item(note("n1"));
    const auto big = app.save_media(item, random_bytes((1 << 20) + 1, 10), ".pdf");
    const auto fits = app.save_media(item, random_bytes(1 << 20, 11), ".pdf");
    app.add_media_row(item, "image", std::nullopt, "../../outside.jpg", "image/jpeg");
    carry(a, b);
    const auto counts = a.counts();
    CHECK(counts.too_large == 1);
    CHECK(counts.max_file_bytes == 1 << 20);
    CHECK(counts.invalid == 1);
    CHECK(counts.synced == 1);
    CHECK(b.counts().invalid == 1);
    CHECK(b.counts().waiting == 1);  // the big one: its origin does not send it
    CHECK(fs::exists(b.file(fits)));
    CHECK_FALSE(fs::exists(b.file(big)));
    CHECK_FALSE(fs::exists(dir.path() / "outside.jpg"));
    CHECK_FALSE(fs::exists(dir.path() / "b" / "outside.jpg"));

    // A larger limit (the config reloaded): sent after all.
    a.options.max_file_bytes = 2 << 20;
    a.connect();
    carry(a, b);
    CHECK(a.counts().too_large == 0);
    CHECK(fs::exists(b.file(big)));
}

TEST_CASE(
    "a connection cut in the middle of an upload and of a download resumes where it "
    "stopped",
    "[media]") {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    FaultProxy proxy("127.0.0.1", static_cast<std::uint16_t>(shared_postgres().port()), 15);
    const auto through_proxy = up.daemon_conninfo + " " + proxy.host_port_conninfo();
    // Cut everything after the 10th chunk, once per peer.
    int chunks = 0;
    MediaOptions cut;
    cut.fault_hook = [&](std::string_view point) {
        if ((point == "media:chunk-sent" || point == "media:chunk-written") && ++chunks == 10)
            proxy.cut_all();
    };
    Peer a(dir, "a", through_proxy, cut), b(dir, "b", through_proxy, cut);
    AppWriter app(a.db);
    const auto bytes = random_bytes(20 * (1 << 20) + 7, 12);  // 21 chunks
    const auto path = app.save_media(app.upsert_item(note("n1")), bytes, ".pdf");
    a.engine->sync_once();

    // The upload.
    expect_cut(a, "the upload");
    CHECK(proxy.stats().cuts >= 1);
    a.connect();
    const auto second = a.move_files();
    CHECK(second.uploaded == 1);
    CHECK(second.chunks_skipped >= 9);  // what got there before the cut is not sent again
    CHECK(second.chunks_sent + second.chunks_skipped == 21);

    // The download (B's connection went with the same cut).
    chunks = 0;
    b.connect();
    b.engine->sync_once();
    expect_cut(b, "the download");
    CHECK(fs::exists(partial_path(b.file(path))));
    CHECK_FALSE(fs::exists(b.file(path)));  // nothing half-written is ever visible
    b.connect();
    const auto resumed = b.move_files();
    CHECK(resumed.downloaded == 1);
    CHECK(resumed.chunks_fetched <= 21 - 9);
    CHECK(file_digest(b.file(path)) == sha256_hex(bytes));
    CHECK_FALSE(fs::exists(partial_path(b.file(path))));
}

TEST_CASE(
    "verify reports files missing or different on either side, and --repair queues them "
    "again",
    "[media]") {
    TwoPeers p;
    AppWriter app(p.a.db);
    const auto item = app.upsert_item(note("n1"));
    const auto one = app.save_media(item, image_bytes(20), ".jpg");
    const auto two = app.save_media(item, image_bytes(21), ".jpg");
    carry(p.a, p.b);
    REQUIRE(p.b.media->verify(false).matches());

    fs::remove(p.b.file(one));                                    // lost here
    std::ofstream(p.b.file(two), std::ios::binary) << "damaged";  // the daemon's copy, damaged
    auto report = p.b.media->verify(false);
    CHECK(report.missing_locally == std::vector<std::string>{one});
    CHECK(report.different == std::vector<std::string>{two});
    CHECK_FALSE(report.matches());

    report = p.b.media->verify(true);
    CHECK(report.repaired == 2);
    p.b.move_files();
    CHECK(p.b.media->verify(false).matches());
    CHECK(file_digest(p.b.file(two)) == sha256_hex(image_bytes(21)));

    // Gone upstream (removed by hand): the origin's --repair sends it again.
    pqxx::connection admin(p.up.admin_conninfo);
    pqxx::nontransaction(admin).exec("DELETE FROM lestash.media_files");
    report = p.a.media->verify(false);
    CHECK(report.missing_upstream.size() == 2);
    p.a.media->verify(true);
    p.a.move_files();
    CHECK(p.a.media->verify(false).matches());
}

TEST_CASE(
    "two daemons carry an image and a 50 MB file byte-identical, and remove them with "
    "their item",
    "[media][daemon]") {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    std::ofstream(dir.file("sync.toml")) << "[sync]\ntables = [\"items\", \"item_history\", "
                                            "\"tags\", \"item_tags\", \"sources\", \"sync_log\", "
                                            "\"item_media\"]\n";
    std::vector<std::unique_ptr<DaemonProcess>> daemons;
    std::map<std::string, std::string> dbs;
    for (const std::string name : {"a", "b"}) {
        fs::create_directories(dir.path() / name);
        dbs[name] = dir.file(name + "/lestash.db");
        create_lestash_db(dbs[name], 11);
        daemons.push_back(std::make_unique<DaemonProcess>(
            std::vector<std::string>{"--config", dir.file("sync.toml"), "--db", dbs[name],
                                     "--postgres", up.daemon_conninfo, "--socket",
                                     dir.file(name + ".sock"), "--replica", name, "--log-level",
                                     "debug"},
            dir.file(name + ".log")));
    }
    auto& da = *daemons[0];
    auto& db = *daemons[1];
    const std::vector<DaemonProcess*> both{&da, &db};
    for (auto* d : both)
        require_eventually([&] { return d->log().find("sync (start)") != std::string::npos; },
                           both);

    AppWriter app(dbs["a"]);
    const auto item = app.upsert_item(note("big"));
    const auto photo = image_bytes(30);
    const auto big = random_bytes(50 << 20, 31);
    const auto photo_path = app.save_media(item, photo, ".jpg");
    const auto big_path = app.save_media(item, big, ".bin");
    const auto at_b = [&](const std::string& relative) { return media_root(dbs["b"]) / relative; };
    require_eventually(
        [&] {
            return file_digest(at_b(photo_path)) == sha256_hex(photo) && fs::exists(at_b(big_path));
        },
        both, 180s);
    CHECK(file_digest(at_b(big_path)) == sha256_hex(big));
    CHECK(da.log().find("uploaded media file " + big_path) != std::string::npos);

    // The status says what Postgres holds and the limit.
    CHECK(status_of(dir, "a")["media"]["max_file_mb"] == 1024);
    require_eventually(
        [&] {
            const auto m = status_of(dir, "a")["media"];
            return m["synced"] == 2 &&
                   m["upstream_bytes"] == static_cast<std::int64_t>(photo.size() + big.size());
        },
        both);
    const auto verify = run_command(std::string(LESTASH_CLI_PATH) + " --socket " +
                                    dir.file("b.sock") + " --json verify");
    CHECK(verify.status == 0);
    CHECK(nlohmann::json::parse(verify.output)["media"]["files"] == 2);

    app.delete_item(item);
    require_eventually([&] { return !fs::exists(at_b(big_path)) && !fs::exists(at_b(photo_path)); },
                       both);
    CHECK(fs::exists(media_root(dbs["a"]) / big_path));
    CHECK(da.stop(SIGTERM) == 0);
    CHECK(db.stop(SIGTERM) == 0);
}

TEST_CASE(
    "a daemon reports a file missing at its origin, and sends it once it appears and the "
    "owner says `now`",
    "[media][daemon]") {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    std::ofstream(dir.file("sync.toml")) << "[sync]\ntables = [\"items\", \"item_history\", "
                                            "\"tags\", \"item_tags\", \"sources\", \"sync_log\", "
                                            "\"item_media\"]\n";
    fs::create_directories(dir.path() / "a");
    const auto a = dir.file("a/lestash.db");
    create_lestash_db(a, 11);
    DaemonProcess da(
        {"--config", dir.file("sync.toml"), "--db", a, "--postgres", up.daemon_conninfo, "--socket",
         dir.file("a.sock"), "--replica", "a", "--log-level", "debug"},
        dir.file("a.log"));
    require_eventually([&] { return da.log().find("sync (start)") != std::string::npos; }, {&da});
    AppWriter app(a);
    const auto bytes = image_bytes(40);
    const auto path = app.save_media(app.upsert_item(note("n1")), bytes, ".jpg", false);
    const auto status = [&] { return status_of(dir, "a"); };
    require_eventually([&] { return status()["media"]["missing"] == 1; }, {&da});
    CHECK(status()["summary"].get<std::string>().find("1 media file missing") != std::string::npos);
    CHECK(da.log().find("media file " + path +
                        " is named by an item_media row made here, but it "
                        "is not in") != std::string::npos);
    const auto human =
        run_command(std::string(LESTASH_CLI_PATH) + " --socket " + dir.file("a.sock") + " status");
    CHECK(human.output.find("1 missing") != std::string::npos);

    fs::create_directories(media_root(a) / fs::path(path).parent_path());
    std::ofstream(media_root(a) / path, std::ios::binary) << bytes;
    REQUIRE(run_command(std::string(LESTASH_CLI_PATH) + " --socket " + dir.file("a.sock") + " now")
                .status == 0);
    require_eventually([&] { return status()["media"]["synced"] == 1; }, {&da});
    CHECK(pg_int(up, "SELECT count(*) FROM lestash.media_files") == 1);
    CHECK(da.running());
    CHECK(da.stop(SIGTERM) == 0);
}

}  // namespace lestash::test
