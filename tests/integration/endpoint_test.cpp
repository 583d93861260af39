// lestash-endpoint as a process against a real Postgres, over real HTTP:
// pairing, tokens, what is refused (and that nothing is written then), and
// the apply function's promises seen from the wire. The phone's own client
// and the PowerSync service are in tests/powersync (phone-e2e).
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <pqxx/pqxx>
#include <tuple>

#include "app_writer.hpp"
#include "daemon_process.hpp"
#include "lestash_sync/common/proc.hpp"
#include "lestash_sync/common/sha256.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/endpoint/secrets.hpp"
#include "lestash_sync/endpoint/tokens.hpp"
#include "powersync_rig.hpp"
#include "skip.hpp"
#include "sync_fixture.hpp"
#include "temp_dir.hpp"

namespace lestash::test {
namespace {

using nlohmann::json;

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct EndpointFixture {
    UpstreamDatabase up = fresh_upstream();
    TempDir dir;
    std::string key = base64url_encode(random_bytes(32));
    JwtKey rsa{"test-rsa", "RS256", "",
               std::shared_ptr<EVP_PKEY>(EVP_RSA_gen(2048), EVP_PKEY_free)};
    std::unique_ptr<EndpointProcess> endpoint;

    EndpointFixture() {
        std::ofstream(dir.file("jwks.json")) << json{{"keys", {public_jwk(rsa)}}}.dump();
        endpoint = std::make_unique<EndpointProcess>(
            shared_postgres(), up.name, key, "http://127.0.0.1:9/powersync", dir.path(),
            "jwks_file = \"" + dir.file("jwks.json") + "\"\n");
    }

    httplib::Client client() const {
        httplib::Client c("127.0.0.1", endpoint->port());
        c.set_read_timeout(30, 0);
        return c;
    }

    json post(const std::string& path, const std::string& body, const std::string& bearer = "",
              int* status = nullptr) {
        auto c = client();
        httplib::Headers headers;
        if (!bearer.empty())
            headers.emplace("Authorization", "Bearer " + bearer);
        const auto res = c.Post(path.c_str(), headers, body, "application/json");
        INFO("POST " << path << " failed: " << httplib::to_string(res.error()) << "\nlog:\n"
                     << endpoint->log());
        REQUIRE(res);
        if (status)
            *status = res->status;
        return json::parse(res->body);
    }

    // A paired device: its id and credential.
    std::pair<std::string, std::string> pair(const std::string& name) {
        int status = 0;
        const auto answer =
            post("/api/pair", json{{"code", endpoint->pairing_code(name)}}.dump(), "", &status);
        REQUIRE(status == 200);
        return {answer["device_id"].get<std::string>(), answer["credential"].get<std::string>()};
    }

    std::string token_for(const std::string& device, const JwtKey& signer,
                          json aud = "lestash-powersync", std::int64_t exp_in = 300) {
        const auto now = unix_now();
        return sign_token(signer,
                          {{"sub", device}, {"aud", aud}, {"iat", now - 1}, {"exp", now + exp_in}});
    }
    JwtKey hs() const { return hs256_key("lestash-hs256", key, "test"); }

    std::int64_t count(const std::string& sql) {
        pqxx::connection c(up.admin_conninfo);
        pqxx::nontransaction q(c);
        return q.exec1(sql)[0].as<std::int64_t>();
    }
    // Rows the phone could have written, and the transactions recorded.
    std::int64_t written() {
        return count(
            "SELECT (SELECT count(*) FROM lestash.tags) + (SELECT count(*) FROM "
            "lestash.items) + (SELECT count(*) FROM lestash.phone_transactions) + "
            "(SELECT count(*) FROM lestash.phone_dead_letters)");
    }
};

std::string one_tag(std::int64_t tx, const std::string& name,
                    const std::string& id = random_uuid()) {
    return json{
        {"transaction_id", tx},
        {"crud", {{{"op", "PUT"}, {"type", "tags"}, {"id", id}, {"data", {{"name", name}}}}}}}
        .dump();
}

TEST_CASE_METHOD(EndpointFixture,
                 "a pairing code works once and its credential gets tokens "
                 "the endpoint accepts, until the device is revoked",
                 "[endpoint]") {
    const std::string code = endpoint->pairing_code("Pixel 8");
    int status = 0;
    const auto paired = post("/api/pair", json{{"code", code}}.dump(), "", &status);
    REQUIRE(status == 200);
    CHECK(paired["name"] == "Pixel 8");
    post("/api/pair", json{{"code", code}}.dump(), "", &status);
    CHECK(status == 401);  // once only

    const auto token = post("/api/token", "", paired["credential"].get<std::string>(), &status);
    REQUIRE(status == 200);
    CHECK(token["endpoint"] == "http://127.0.0.1:9/powersync");
    CHECK(token["expires_at"].get<std::int64_t>() - unix_now() <= 300);
    auto answer =
        post("/api/upload", one_tag(1, "paired"), token["token"].get<std::string>(), &status);
    CHECK(status == 200);
    CHECK(answer["applied"] == 1);
    // Credentials are kept hashed only.
    CHECK(count("SELECT count(*) FROM lestash.devices WHERE credential_hash = sha256(convert_to('" +
                paired["credential"].get<std::string>() + "', 'UTF8'))") == 1);

    const auto revoked = run_command(std::string(LESTASH_ENDPOINT_PATH) + " --config " +
                                     endpoint->config_path() + " devices revoke 'Pixel 8'");
    INFO(revoked.output);
    REQUIRE(revoked.status == 0);
    const auto before = written();
    answer = post("/api/upload", one_tag(2, "after revoking"), token["token"].get<std::string>(),
                  &status);
    CHECK(status == 401);  // the token is still in its lifetime: refused all the same
    post("/api/token", "", paired["credential"].get<std::string>(), &status);
    CHECK(status == 401);
    CHECK(written() == before);
    const auto listed = run_command(std::string(LESTASH_ENDPOINT_PATH) + " --config " +
                                    endpoint->config_path() + " devices list");
    CHECK(listed.output.find("revoked") != std::string::npos);
}

TEST_CASE_METHOD(EndpointFixture,
                 "tokens without, expired, for another audience, badly signed "
                 "or for no device are 401 and write nothing",
                 "[endpoint]") {
    const auto [device, credential] = pair("phone");
    const auto before = written();
    const JwtKey wrong = hs256_key("lestash-hs256", base64url_encode(random_bytes(32)), "test");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "no credentials"},
        {"not-a-jwt", "not a JWT"},
        {token_for(device, hs(), "lestash-powersync", -60), "expired"},
        {token_for(device, hs(), "another-audience"), "audience"},
        {token_for(device, wrong), "signature"},
        {token_for(random_uuid(), hs()), "not paired"},
        {token_for("lestash-phone", hs()), "subject"}};
    for (const auto& [token, reason] : cases) {
        INFO("expected: " << reason);
        int status = 0;
        const auto answer = post("/api/upload", one_tag(1, "refused"), token, &status);
        CHECK(status == 401);
        CHECK(answer["error"].get<std::string>().find(reason) != std::string::npos);
    }
    CHECK(written() == before);
    // RS256 with a key of the JWKS is accepted.
    int status = 0;
    post("/api/upload", one_tag(1, "rs256"), token_for(device, rsa), &status);
    CHECK(status == 200);
}

TEST_CASE_METHOD(EndpointFixture,
                 "bad input is refused with a message saying what was wrong, "
                 "and nothing is written",
                 "[endpoint]") {
    const auto [device, credential] = pair("phone");
    const std::string token = token_for(device, hs());
    const auto before = written();
    const std::string item = random_uuid();
    const std::vector<std::tuple<std::string, int, std::string>> cases = {
        {"{\"transaction_id\": 1, \"crud\": [", 400, "not valid JSON"},
        {json{{"transaction_id", 1},
              {"crud",
               {{{"op", "PUT"}, {"type", "widgets"}, {"id", item}, {"data", json::object()}}}}}
             .dump(),
         422, "\"widgets\" is not a synced table"},
        {json{{"transaction_id", 1},
              {"crud",
               {{{"op", "PUT"}, {"type", "items"}, {"id", item}, {"data", {{"colour", "red"}}}}}}}
             .dump(),
         422, "has no column \"colour\""},
        {json{{"transaction_id", 1},
              {"crud",
               {{{"op", "PUT"},
                 {"type", "items"},
                 {"id", item},
                 {"data", {{"is_own_content", "yes"}}}}}}}
             .dump(),
         422, "is_own_content is an integer column"},
        {std::string(5 * 1024 * 1024, ' '), 413, "larger than this endpoint accepts"}};
    for (const auto& [body, expected, message] : cases) {
        INFO(message);
        int status = 0;
        const auto answer = post("/api/upload", body, token, &status);
        CHECK(status == expected);
        CHECK(answer["error"].get<std::string>().find(message) != std::string::npos);
    }
    CHECK(written() == before);
}

TEST_CASE_METHOD(EndpointFixture,
                 "a retried transaction is answered as before and applied once, "
                 "a refused one is a dead letter and the next ones apply",
                 "[endpoint]") {
    const auto [device, credential] = pair("phone");
    const std::string token = token_for(device, hs());
    const std::string tag = random_uuid();
    int status = 0;
    const auto first = post("/api/upload", one_tag(1, "once", tag), token, &status);
    REQUIRE(status == 200);
    REQUIRE(first["replaced_ids"].size() == 1);  // a made-up id for a name-based row
    const auto retry = post("/api/upload", one_tag(1, "once", tag), token, &status);
    CHECK(retry["already_applied"] == true);
    CHECK(retry["replaced_ids"] == first["replaced_ids"]);
    CHECK(count("SELECT count(*) FROM lestash.change_log WHERE tbl = 'tags'") == 1);

    // A tag without a name (NOT NULL in Le Stash): refused whole, acknowledged.
    const auto poison = json{
        {"transaction_id", 2},
        {"crud",
         {{{"op", "PUT"}, {"type", "tags"}, {"id", random_uuid()}, {"data", {{"name", "fine"}}}},
          {{"op", "PUT"},
           {"type", "tags"},
           {"id", random_uuid()},
           {"data", {{"kind", "topic"}}}}}}};
    const auto dead = post("/api/upload", poison.dump(), token, &status);
    CHECK(status == 200);
    REQUIRE(dead.contains("dead_lettered"));
    CHECK(dead["dead_lettered"]["sqlstate"] == "23514");
    CHECK(count("SELECT count(*) FROM lestash.tags WHERE name = 'fine'") == 0);
    CHECK(count("SELECT count(*) FROM lestash.phone_dead_letters WHERE client_tx = 2") == 1);
    post("/api/upload", one_tag(3, "after the poison"), token, &status);
    CHECK(status == 200);
    CHECK(count("SELECT count(*) FROM lestash.tags WHERE name = 'after the poison'") == 1);

    auto c = client();
    const auto health = c.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    const auto metrics = c.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->body.find("lestash_endpoint_transactions_total{outcome=\"duplicate\"} 1") !=
          std::string::npos);
    CHECK(metrics->body.find("lestash_endpoint_transactions_total{outcome=\"dead_lettered\"} 1") !=
          std::string::npos);
    // The log names the device and never a secret.
    const std::string log = endpoint->log();
    CHECK(log.find("device=" + device) != std::string::npos);
    CHECK(log.find(credential) == std::string::npos);
    CHECK(log.find(token) == std::string::npos);
    CHECK(log.find(token.substr(token.rfind('.') + 1)) == std::string::npos);
}

TEST_CASE_METHOD(EndpointFixture,
                 "a later transaction naming the phone's made-up id lands on the canonical "
                 "row, children sent first included, and an edit of a deleted row is a "
                 "conflict the delete wins",
                 "[endpoint]") {
    const auto [device, credential] = pair("phone");
    const std::string token = token_for(device, hs());
    const std::string phone_tag = random_uuid(), item = random_uuid();
    int status = 0;
    const auto first = post("/api/upload", one_tag(1, "named later", phone_tag), token, &status);
    REQUIRE(status == 200);
    REQUIRE(first["replaced_ids"].size() == 1);
    const std::string canonical = first["replaced_ids"][0]["id"].get<std::string>();
    CHECK(canonical != phone_tag);

    // The link first, then its item: the phone has not synced the canonical tag yet.
    const auto linked =
        json{{"transaction_id", 2},
             {"crud",
              {{{"op", "PUT"},
                {"type", "item_tags"},
                {"id", random_uuid()},
                {"data", {{"item_id", item}, {"tag_id", phone_tag}}}},
               {{"op", "PUT"},
                {"type", "items"},
                {"id", item},
                {"data", {{"source_type", "manual"}, {"content", "kept id, no source_id"}}}}}}};
    const auto answer = post("/api/upload", linked.dump(), token, &status);
    INFO(answer.dump());
    REQUIRE(status == 200);
    CHECK(answer["applied"] == 2);
    CHECK(count("SELECT count(*) FROM lestash.item_tags WHERE item_id = '" + item +
                "' AND tag_id = '" + canonical + "'") == 1);
    CHECK(count("SELECT count(*) FROM lestash.items WHERE id = '" + item + "' AND _origin = '" +
                device + "'") == 1);

    // A desktop deletes the item; the phone, not knowing, edits it.
    const auto rev = count("SELECT _rev FROM lestash.items WHERE id = '" + item + "'");
    {
        pqxx::connection c(up.admin_conninfo);
        pqxx::nontransaction(c).exec("DELETE FROM lestash.items WHERE id = '" + item + "'");
    }
    const auto edit = json{{"transaction_id", 3},
                           {"crud",
                            {{{"op", "PATCH"},
                              {"type", "items"},
                              {"id", item},
                              {"data", {{"title", "edited offline"}}},
                              {"old", {{"_rev", rev}}}}}}};
    const auto late = post("/api/upload", edit.dump(), token, &status);
    INFO(late.dump());
    CHECK(status == 200);
    CHECK(late["conflicts"] == 1);
    CHECK(count("SELECT count(*) FROM lestash.items WHERE id = '" + item + "'") == 0);
    CHECK(count("SELECT count(*) FROM lestash.conflicts WHERE row_id = '" + item +
                "' AND column_name = '*' AND loser_origin = '" + device +
                "' AND loser_value ->> 'title' = 'edited offline'") == 1);
}

// A desktop whose daemon uploads the app's attachments to the fixture's
// Postgres through the real media upload path, and a paired phone's token.
struct DesktopAndPhone : EndpointFixture {
    std::string db = dir.file("desktop/lestash.db");
    std::unique_ptr<DaemonProcess> daemon;
    std::unique_ptr<AppWriter> app;
    std::string token;

    DesktopAndPhone() {
        std::filesystem::create_directories(dir.path() / "desktop");
        create_lestash_db(db, 11);
        std::ofstream(dir.file("sync.toml")) << "[sync]\n";  // the default tables, item_media too
        daemon = std::make_unique<DaemonProcess>(
            std::vector<std::string>{"--config", dir.file("sync.toml"), "--db", db, "--postgres",
                                     up.daemon_conninfo, "--socket", dir.file("desktop.sock"),
                                     "--replica", "desktop", "--log-level", "debug"},
            dir.file("desktop.log"));
        wait_for("the daemon starts",
                 [&] { return daemon->log().find("sync (start)") != std::string::npos; });
        app = std::make_unique<AppWriter>(db);
        token = token_for(pair("phone").first, hs());
    }

    // lestash_endpoint_<name> of GET /metrics; -1 when it is not there.
    std::int64_t metric(const std::string& name) {
        const auto res = client().Get("/metrics");
        REQUIRE(res);
        const std::string line = "\nlestash_endpoint_" + name + " ";
        const auto at = res->body.find(line);
        return at == std::string::npos ? -1 : std::stoll(res->body.substr(at + line.size()));
    }

    void wait_for(const std::string& what, const std::function<bool()>& condition) {
        if (!eventually(condition, std::chrono::seconds(180)))
            FAIL("gave up waiting until " << what << "; the daemon's log:\n"
                                          << daemon->log() << "\nthe endpoint's log:\n"
                                          << endpoint->log());
    }

    // An attachment the app saves (`upload` false: its row without the
    // file); its relative path once Postgres has what the daemon sends.
    std::string attach(const std::string& bytes, const std::string& ext, bool upload = true) {
        ItemFields item;
        item.source_id = random_uuid();
        item.content = "a note with an attachment " + *item.source_id;
        const auto path = app->save_media(app->upsert_item(item), bytes, ext, upload);
        const std::string stored =
            "SELECT (SELECT count(*) FROM lestash.item_media WHERE local_path = '" + path +
            "') + (SELECT count(*) FROM lestash.media_files f JOIN lestash.media_blobs b USING "
            "(sha256) WHERE b.complete AND f.path = '" +
            path + "')";
        wait_for("Postgres has " + path, [&] { return count(stored) == (upload ? 2 : 1); });
        return path;
    }
};

// A GET of a media file as a phone makes it, the body hashed as it arrives.
struct Fetched {
    bool answered = false;  // a whole answer arrived (not cut)
    int status = 0;
    httplib::Headers headers;
    std::string body;  // kept when `keep`, and always for an error
    std::string sha256;
    std::int64_t bytes = 0;
    std::string header(const std::string& name) const {
        const auto it = headers.find(name);
        return it == headers.end() ? "" : it->second;
    }
    json error() const { return json::parse(body, nullptr, false); }
};

Fetched fetch(const EndpointFixture& f, const std::string& path, const std::string& token,
              const std::string& range = "", std::int64_t stop_after = -1, bool keep = true) {
    auto c = f.client();
    httplib::Headers headers;
    if (!token.empty())
        headers.emplace("Authorization", "Bearer " + token);
    if (!range.empty())
        headers.emplace("Range", range);
    Fetched out;
    Sha256 hash;
    const auto res = c.Get(
        path.c_str(), headers,
        [&](const httplib::Response& r) {
            out.status = r.status;
            out.headers = r.headers;
            return true;
        },
        [&](const char* data, std::size_t n) {
            const auto take = stop_after < 0
                                  ? n
                                  : static_cast<std::size_t>(std::min<std::int64_t>(
                                        static_cast<std::int64_t>(n), stop_after - out.bytes));
            hash.update(std::string_view(data, take));
            if (keep || (out.status != 200 && out.status != 206))
                out.body.append(data, take);
            out.bytes += static_cast<std::int64_t>(take);
            return stop_after < 0 || out.bytes < stop_after;
        });
    out.answered = static_cast<bool>(res);
    out.sha256 = hash.hex_digest();
    return out;
}

TEST_CASE_METHOD(DesktopAndPhone,
                 "a phone fetches a media file byte-identical, resumes a cut download with "
                 "Range, and gets 401, 400 or 404 with a message when it should",
                 "[endpoint]") {
    const std::string photo = std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00", 11) +
                              random_bytes(37'000) + std::string("\xFF\xD9", 2);
    const std::string pdf = "%PDF-1.7\n" + random_bytes(3 * 1024 * 1024 + 12'345);
    const auto photo_path = attach(photo, ".jpg");
    const auto pdf_path = attach(pdf, ".pdf");

    auto got = fetch(*this, "/api/media/" + photo_path, token);
    INFO(endpoint->log());
    REQUIRE(got.answered);
    CHECK(got.status == 200);
    CHECK(got.sha256 == sha256_hex(photo));
    CHECK(got.body == photo);
    CHECK(got.header("X-Lestash-Sha256") == sha256_hex(photo));
    CHECK(got.header("ETag") == "\"" + sha256_hex(photo) + "\"");
    CHECK(got.header("Content-Type") == "image/jpeg");
    CHECK(got.header("Content-Length") == std::to_string(photo.size()));
    CHECK(got.header("Accept-Ranges") == "bytes");

    // A download cut after 1,234,567 bytes (mid-chunk) resumes from there.
    const std::int64_t cut_at = 1'234'567;
    const auto first = fetch(*this, "/api/media/" + pdf_path, token, "", cut_at);
    CHECK_FALSE(first.answered);
    REQUIRE(first.bytes == cut_at);
    const auto rest =
        fetch(*this, "/api/media/" + pdf_path, token, "bytes=" + std::to_string(cut_at) + "-");
    REQUIRE(rest.answered);
    CHECK(rest.status == 206);
    CHECK(rest.header("Content-Range") == "bytes " + std::to_string(cut_at) + "-" +
                                              std::to_string(pdf.size() - 1) + "/" +
                                              std::to_string(pdf.size()));
    CHECK(rest.header("Content-Length") == std::to_string(pdf.size() - cut_at));
    CHECK(rest.header("Content-Type") == "application/pdf");
    CHECK(sha256_hex(first.body + rest.body) == sha256_hex(pdf));
    CHECK(sha256_hex(first.body + rest.body) == rest.header("X-Lestash-Sha256"));
    // A closed range, a suffix, a range past the end cut to the end.
    got = fetch(*this, "/api/media/" + pdf_path, token, "bytes=1048570-1048579");
    CHECK(got.status == 206);
    CHECK(got.body == pdf.substr(1048570, 10));
    got = fetch(*this, "/api/media/" + pdf_path, token, "bytes=-100");
    CHECK(got.status == 206);
    CHECK(got.body == pdf.substr(pdf.size() - 100));
    got = fetch(*this, "/api/media/" + photo_path, token, "bytes=37000-99999999");
    CHECK(got.status == 206);
    CHECK(got.body == photo.substr(37000));
    // Ranges no byte of the file satisfies, or several at once: 416.
    for (const std::string& range :
         {"bytes=" + std::to_string(photo.size()) + "-", std::string("bytes=0-1,5-9")}) {
        INFO(range);
        got = fetch(*this, "/api/media/" + photo_path, token, range);
        CHECK(got.status == 416);
        CHECK(got.header("Content-Range") == "bytes */" + std::to_string(photo.size()));
        CHECK(got.error()["error"].get<std::string>().find("resume with Range: bytes=") !=
              std::string::npos);
    }

    // No token, or a bad one: 401, whatever the path.
    const JwtKey wrong = hs256_key("lestash-hs256", base64url_encode(random_bytes(32)), "test");
    for (const auto& bad : {std::string(), std::string("not-a-jwt"), token_for(random_uuid(), hs()),
                            token_for(random_uuid(), wrong)}) {
        got = fetch(*this, "/api/media/" + photo_path, bad);
        CHECK(got.status == 401);
        CHECK(got.bytes < 300);  // a JSON error, not the file
        CHECK(got.error().contains("error"));
    }

    // Paths that could leave the media folder, or are no path: 400 before any
    // look-up, even with Range (the error is not cut to it). The endpoint
    // reads no local file at all; the bytes only ever come from Postgres.
    for (const std::string bad :
         {"../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "1/%2e%2e/%2e%2e/x",
          "1/a%00b.jpg", "1/a%5cb.jpg", "1//a.jpg", "1/"}) {
        INFO(bad);
        got = fetch(*this, "/api/media/" + bad, token, "bytes=5-");
        CHECK(got.status == 400);
        CHECK(got.error()["error"].get<std::string>().find("not a media path") !=
              std::string::npos);
    }
    // A path no item names; one whose row arrived but whose file did not.
    got = fetch(*this, "/api/media/1/0123456789ab.jpg", token, "bytes=5-");
    CHECK(got.status == 404);
    CHECK(got.error()["error"].get<std::string>().find("no item's media names") !=
          std::string::npos);
    const auto waiting = attach(random_bytes(1000), ".png", false);
    got = fetch(*this, "/api/media/" + waiting, token);
    CHECK(got.status == 404);
    CHECK(got.error()["error"].get<std::string>().find("not in Postgres yet") != std::string::npos);

    // The endpoint counts what it sent (once each answer's last byte has
    // left). The cut download counts as cut, or as complete when the kernel
    // took all its bytes before the phone went away.
    const auto range_count = [&] { return metric("media_downloads_total{outcome=\"range\"}"); };
    eventually([&] { return range_count() == 4; }, std::chrono::seconds(10));
    CHECK(range_count() == 4);
    CHECK(metric("media_downloads_total{outcome=\"complete\"}") +
              metric("media_downloads_total{outcome=\"cut\"}") ==
          2);
    CHECK(metric("media_downloads_total{outcome=\"failed\"}") == 0);
    CHECK(metric("media_bytes_total") >= static_cast<std::int64_t>(photo.size() + pdf.size()));
    CHECK(metric("requests_total{route=\"/api/media\",status=\"404\"}") == 2);
}

TEST_CASE_METHOD(DesktopAndPhone,
                 "a file whose bytes upstream are damaged is cut before its end, never handed "
                 "out whole",
                 "[endpoint]") {
    const std::string bytes = random_bytes(2 * 1024 * 1024 + 100);
    const auto path = attach(bytes, ".bin");
    {  // one byte of the last chunk changed, its length kept
        pqxx::connection c(up.admin_conninfo);
        pqxx::nontransaction(c).exec(
            "UPDATE lestash.media_chunks SET data = set_byte(data, 0, (get_byte(data, 0) + 1) % "
            "256) "
            "WHERE sha256 = '" +
            sha256_hex(bytes) +
            "' AND n = (SELECT max(n) FROM "
            "lestash.media_chunks WHERE sha256 = '" +
            sha256_hex(bytes) + "')");
    }
    for (const std::string& range : {std::string(), std::string("bytes=1000-")}) {
        INFO("Range: " << range);
        const auto got = fetch(*this, "/api/media/" + path, token, range);
        CHECK(got.status == (range.empty() ? 200 : 206));
        CHECK_FALSE(got.answered);  // cut: fewer bytes than Content-Length said
        CHECK(got.bytes < static_cast<std::int64_t>(bytes.size()) - (range.empty() ? 0 : 1000));
    }
    // A range that ends before the damaged chunk is served (the phone checks
    // the whole file's sha256 once it has it all).
    const auto head = fetch(*this, "/api/media/" + path, token, "bytes=0-99");
    CHECK(head.status == 206);
    CHECK(head.body == bytes.substr(0, 100));
    CHECK(endpoint->log().find("does not hash to " + sha256_hex(bytes)) != std::string::npos);
    const auto failed = [&] { return metric("media_downloads_total{outcome=\"failed\"}"); };
    eventually([&] { return failed() == 2; }, std::chrono::seconds(10));
    CHECK(failed() == 2);
}

TEST_CASE_METHOD(DesktopAndPhone,
                 "a 50 MB file is streamed to the phone with the endpoint's memory bounded",
                 "[endpoint]") {
    const std::string big = random_bytes(50 << 20);
    const auto path = attach(big, ".bin");
    const auto before = proc::memory(endpoint->pid());
    REQUIRE(before);
    const auto got = fetch(*this, "/api/media/" + path, token, "", -1, false);
    REQUIRE(got.answered);
    CHECK(got.status == 200);
    CHECK(got.bytes == static_cast<std::int64_t>(big.size()));
    CHECK(got.sha256 == sha256_hex(big));
    const auto after = proc::memory(endpoint->pid());
    REQUIRE(after);
    WARN("lestash-endpoint peak RSS: " << before->peak_rss_kb / 1024.0 << " MiB before, "
                                       << after->peak_rss_kb / 1024.0 << " MiB after sending "
                                       << (big.size() >> 20) << " MiB");
    // Generous: the file held in memory once would add 50 MiB. Not under
    // ASan, whose quarantine keeps freed chunks (256 MB by default): the
    // release pass checks it.
    if (!kAddressSanitizer)
        CHECK(after->peak_rss_kb - before->peak_rss_kb < 40 * 1024);
}

}  // namespace
}  // namespace lestash::test
