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

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/endpoint/secrets.hpp"
#include "lestash_sync/endpoint/tokens.hpp"
#include "powersync_rig.hpp"
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

}  // namespace
}  // namespace lestash::test
