// The phone endpoint's pure parts: an upload checked, ordered and mapped
// (parse_upload), JWTs verified and signed, pairing codes, the metrics.
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <vector>

#include "lestash_sync/endpoint/endpoint_config.hpp"
#include "lestash_sync/endpoint/metrics.hpp"
#include "lestash_sync/endpoint/secrets.hpp"
#include "lestash_sync/endpoint/tokens.hpp"
#include "lestash_sync/endpoint/upload_request.hpp"
#include "temp_dir.hpp"

namespace lestash::test {
namespace {

using nlohmann::json;

// The six tables of migration 001 as lestash.phone_columns() lists them.
PhoneSchema schema() {
    PhoneSchema s;
    s["items"] = {"items",
                  {{"source_type", PgType::text},
                   {"source_id", PgType::text},
                   {"title", PgType::text},
                   {"content", PgType::text},
                   {"is_own_content", PgType::boolean},
                   {"parent_id", PgType::uuid}}};
    s["tags"] = {"tags", {{"name", PgType::text}, {"kind", PgType::text}}};
    s["item_tags"] = {"item_tags", {{"item_id", PgType::uuid}, {"tag_id", PgType::uuid}}};
    s["sync_log"] = {"sync_log", {{"items_added", PgType::bigint}}};
    return s;
}

const std::string kItem = "11111111-1111-4111-8111-111111111111";
const std::string kTag = "22222222-2222-4222-8222-222222222222";
const std::string kLink = "33333333-3333-4333-8333-333333333333";

json put(const std::string& table, const std::string& id, json data) {
    return {{"op", "PUT"}, {"type", table}, {"id", id}, {"data", std::move(data)}};
}

UploadTransaction parse(const json& crud, std::int64_t tx = 7) {
    return parse_upload(json{{"transaction_id", tx}, {"crud", crud}}.dump(), schema());
}

int status_of(const std::string& body) {
    try {
        parse_upload(body, schema());
    } catch (const RequestError& e) {
        return e.status();
    }
    return 200;
}

TEST_CASE("an upload's children come after their parents, whatever order the phone sent",
          "[endpoint]") {
    const auto tx =
        parse(json::array({put("item_tags", kLink, {{"item_id", kItem}, {"tag_id", kTag}}),
                           put("tags", kTag, {{"name", "rust"}}),
                           put("items", kItem, {{"source_type", "manual"}, {"content", "x"}}),
                           {{"op", "PATCH"},
                            {"type", "items"},
                            {"id", kItem},
                            {"data", {{"title", "t"}}},
                            {"old", {{"_rev", 41}}}}}));
    CHECK(tx.client_tx == 7);
    CHECK(tx.ops == 4);
    const auto& ops = tx.ops_for_postgres;
    REQUIRE(ops.size() == 4);
    CHECK(ops[0]["type"] == "tags");
    CHECK(ops[1]["type"] == "items");
    CHECK(ops[1]["op"] == "PUT");
    // The link waits for both parents; the edit for the item's PUT, not for the link.
    CHECK(ops[2]["type"] == "item_tags");
    CHECK(ops[2]["i"] == 0);
    CHECK(ops[3]["op"] == "PATCH");
    CHECK(ops[3]["base"] == 41);
    std::set<std::int64_t> runs;
    for (const auto& o : ops) runs.insert(o["run"].get<std::int64_t>());
    CHECK(runs.size() == 4);
}

TEST_CASE("ops one statement can apply share a run, and a row depending on one of them does not",
          "[endpoint]") {
    const std::string parent = "44444444-4444-4444-8444-444444444444";
    const auto tx =
        parse(json::array({put("tags", kTag, {{"name", "a"}}), put("tags", kLink, {{"name", "b"}}),
                           put("items", parent, {{"content", "p"}, {"parent_id", nullptr}}),
                           put("items", kItem, {{"content", "c"}, {"parent_id", parent}})}));
    const auto& ops = tx.ops_for_postgres;
    CHECK(ops[0]["run"] == ops[1]["run"]);  // two tags, same columns
    CHECK(ops[2]["run"] != ops[1]["run"]);
    CHECK(ops[3]["run"] != ops[2]["run"]);  // the child names the parent in the same table
}

TEST_CASE("values are mapped as a desktop push maps them", "[endpoint]") {
    const auto tx =
        parse(json::array({put("items", kItem,
                               {{"content", std::string("nul\0byte", 8)},
                                {"is_own_content", 1},
                                {"title", nullptr},
                                {"parent_id", "AAAAAAAA-1111-4111-8111-111111111111"},
                                {"_rev", 9}}),
                           put("sync_log", kLink, {{"items_added", 9007199254740993LL}})}));
    const auto& item = tx.ops_for_postgres[0];
    CHECK(item["data"]["is_own_content"] == true);
    CHECK(item["data"]["title"].is_null());
    CHECK(item["data"]["content"].is_null());  // text Postgres cannot hold: exact, in _sqlite
    CHECK(item["sqlite"]["content"] == json::array({"text-hex", "6e756c0062797465"}));
    CHECK(item["data"]["parent_id"] == "aaaaaaaa-1111-4111-8111-111111111111");
    CHECK_FALSE(item["data"].contains("_rev"));  // the server's to stamp
    CHECK(tx.ops_for_postgres[1]["data"]["items_added"] == 9007199254740993LL);
}

TEST_CASE("a PATCH that changes nothing but _rev is left out", "[endpoint]") {
    const auto tx = parse(
        json::array({{{"op", "PATCH"}, {"type", "items"}, {"id", kItem}, {"data", {{"_rev", 3}}}},
                     put("tags", kTag, {{"name", "x"}})}));
    CHECK(tx.ops == 2);
    REQUIRE(tx.ops_for_postgres.size() == 1);
    CHECK(tx.ops_for_postgres[0]["type"] == "tags");
}

TEST_CASE("the transaction id comes from transaction_id or the ops' shared tx_id", "[endpoint]") {
    auto op = put("tags", kTag, {{"name", "x"}});
    op["tx_id"] = 12;
    CHECK(parse_upload(json{{"crud", {op}}}.dump(), schema()).client_tx == 12);
    auto other = op;
    other["tx_id"] = 13;
    CHECK(status_of(json{{"crud", {op, other}}}.dump()) == 400);
}

TEST_CASE("malformed requests are 400, names and values the server cannot take are 422",
          "[endpoint]") {
    CHECK(status_of("{") == 400);
    CHECK(status_of("[]") == 400);
    CHECK(status_of(R"({"transaction_id": 1})") == 400);
    CHECK(status_of(R"({"transaction_id": 1, "crud": []})") == 400);
    CHECK(status_of(R"({"transaction_id": -1, "crud": [{}]})") == 400);
    CHECK(status_of(
              R"({"transaction_id": 1, "crud": [{"op": "UPSERT", "type": "tags", "id": "x"}]})") ==
          400);
    const auto with = [](json op) {
        return json{{"transaction_id", 1}, {"crud", {std::move(op)}}}.dump();
    };
    CHECK(status_of(with(put("tagz", kTag, {{"name", "x"}}))) == 422);
    CHECK(status_of(with(put("tags", kTag, {{"nam", "x"}}))) == 422);
    CHECK(status_of(with(put("tags", "not-a-uuid", {{"name", "x"}}))) == 422);
    CHECK(status_of(with(put("tags", kTag, {{"name", 5}}))) == 422);
    CHECK(status_of(with(put("items", kItem, {{"is_own_content", "yes"}}))) == 422);
    CHECK(status_of(with(put("items", kItem, {{"is_own_content", 1.5}}))) == 422);
    CHECK(status_of(with(put("items", kItem, {{"parent_id", "nope"}}))) == 422);
    CHECK(status_of(with(put("items", kItem, {{"title", json::object()}}))) == 422);
    CHECK(status_of(with(put("sync_log", kItem, {{"items_added", 18446744073709551615ULL}}))) ==
          422);
    CHECK(status_of(with(put("tags", kTag, json::array()))) == 400);
    try {
        parse_upload(with(put("tags", kTag, {{"nam", "x"}})), schema());
    } catch (const RequestError& e) {
        CHECK(std::string(e.what()) == "crud[0] (PUT tags): lestash.tags has no column \"nam\"");
        CHECK(e.names_unknown());
    }
}

// ---- Tokens ----

std::int64_t now() {
    return 1'800'000'000;
}

JwtKey hs_key() {
    return hs256_key("k1", base64url_encode(std::string(32, 'k')), "test");
}

std::shared_ptr<EVP_PKEY> rsa_pair() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    REQUIRE(key);
    return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

json claims(std::int64_t iat, std::int64_t exp, json aud = "lestash-powersync") {
    return {{"sub", kItem}, {"aud", std::move(aud)}, {"iat", iat}, {"exp", exp}};
}

std::string refusal(const std::string& token, const KeySet& keys) {
    try {
        verify_token(token, keys, "lestash-powersync", now());
    } catch (const AuthError& e) {
        return e.what();
    }
    return "accepted";
}

TEST_CASE("HS256 tokens are accepted only with the right key, audience and times", "[endpoint]") {
    KeySet keys;
    keys.add(hs_key());
    const auto good = sign_token(hs_key(), claims(now() - 10, now() + 300));
    CHECK(verify_token(good, keys, "lestash-powersync", now()).subject == kItem);
    CHECK(refusal(sign_token(hs_key(), claims(now() - 400, now() - 100)), keys).find("expired") !=
          std::string::npos);
    CHECK(refusal(sign_token(hs_key(), claims(now(), now() + 300, "someone-else")), keys)
              .find("audience") != std::string::npos);
    CHECK(refusal(sign_token(hs_key(), claims(now() + 600, now() + 900)), keys).find("future") !=
          std::string::npos);
    CHECK(refusal(sign_token(hs_key(), claims(now(), now() + 3 * 86400)), keys)
              .find("longer than a day") != std::string::npos);
    auto not_yet = claims(now(), now() + 300);
    not_yet["nbf"] = now() + 120;
    CHECK(refusal(sign_token(hs_key(), not_yet), keys).find("nbf") != std::string::npos);
    const auto other = hs256_key("k1", base64url_encode(std::string(32, 'x')), "test");
    CHECK(refusal(sign_token(other, claims(now(), now() + 300)), keys) ==
          "the token's signature does not verify");
    // A signature altered by one character, and no signature at all.
    std::string tampered = good;
    tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
    CHECK(refusal(tampered, keys) != "accepted");
    const std::string header_none = base64url_encode(R"({"alg":"none"})");
    CHECK(refusal(
              header_none + "." + good.substr(good.find('.') + 1, good.rfind('.') - good.find('.')),
              keys)
              .find("none") != std::string::npos);
    CHECK(refusal("abc", keys).find("not a JWT") != std::string::npos);
}

TEST_CASE(
    "RS256 tokens verify with the public key of a JWKS, and an RSA key never serves as an "
    "HMAC secret",
    "[endpoint]") {
    const JwtKey pair{"rsa1", "RS256", "", rsa_pair()};
    const auto jwks = json{{"keys", {public_jwk(pair)}}};
    const KeySet keys = KeySet::from_jwks(jwks, "test jwks");
    CHECK(
        verify_token(sign_token(pair, claims(now(), now() + 300)), keys, "lestash-powersync", now())
            .subject == kItem);
    // An HS256 token under the RSA key's kid finds no HS256 key.
    const auto confused = hs256_key("rsa1", base64url_encode(std::string(40, 'n')), "test");
    CHECK(refusal(sign_token(confused, claims(now(), now() + 300)), keys).find("no HS256 key") !=
          std::string::npos);
    const JwtKey stranger{"rsa1", "RS256", "", rsa_pair()};
    CHECK(refusal(sign_token(stranger, claims(now(), now() + 300)), keys) ==
          "the token's signature does not verify");
    CHECK_THROWS_AS(KeySet::from_jwks(json{{"keys", {{{"kty", "EC"}, {"kid", "e"}}}}}, "x"),
                    ConfigError);
}

TEST_CASE("base64url round-trips and refuses what is not base64url", "[endpoint]") {
    for (const std::string& s :
         std::vector<std::string>{"", "f", "fo", "foo", "foob", std::string("\0\xff\x10", 3)})
        CHECK(base64url_decode(base64url_encode(s)) == s);
    CHECK_THROWS(base64url_decode("a+b/"));
    CHECK_THROWS(base64url_decode("abcde"));
    CHECK_THROWS(base64url_decode("ab=="));
}

TEST_CASE("pairing codes read the same however they are typed", "[endpoint]") {
    const std::string code = new_pairing_code();
    CHECK(code.size() == 14);
    CHECK(code[4] == '-');
    CHECK(normalized_pairing_code(code) == normalized_pairing_code(" " + code + " "));
    CHECK(normalized_pairing_code("ab1o-il00") ==
          "AB10110"
          "0");
    CHECK(new_pairing_code() != code);
    CHECK(base64url_decode(new_device_credential()).size() == 32);
    CHECK(sha256("abc").size() == 32);
}

// ---- Configuration ----

TEST_CASE("the example endpoint config loads as documented, and mistakes are named", "[endpoint]") {
    TempDir dir;
    std::ifstream in(std::string(LESTASH_SOURCE_DIR) + "/config/endpoint.toml.example");
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::ofstream(dir.file("hs256.key")) << base64url_encode(std::string(32, 's')) << "\n";
    text = std::regex_replace(text, std::regex("/etc/lestash/powersync-hs256.key"),
                              dir.file("hs256.key"));
    std::ofstream(dir.file("endpoint.toml")) << text;
    const auto c = load_endpoint_config(dir.file("endpoint.toml"));
    CHECK(c.port == 8090);
    CHECK(c.max_body_bytes == 4194304);
    CHECK(c.signing.alg == "HS256");
    CHECK(c.signing.kid == "lestash-hs256");
    CHECK(c.trusted.find("lestash-hs256", "HS256") != nullptr);

    auto refused = [&](const std::string& toml) {
        std::ofstream(dir.file("bad.toml")) << toml;
        try {
            load_endpoint_config(dir.file("bad.toml"));
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    const std::string key = "[tokens]\nhs256_key_file = \"" + dir.file("hs256.key") + "\"\n";
    CHECK(refused("[endpoint]\npowersync_url = \"x\"\nprot = 1\n" + key)
              .find("unknown key endpoint.prot") != std::string::npos);
    CHECK(refused("[endpoint]\n" + key).find("powersync_url is required") != std::string::npos);
    CHECK(
        refused("[endpoint]\npowersync_url = \"x\"\ntls_cert_file = \"c\"\n" + key).find("both") !=
        std::string::npos);
    CHECK(refused("[endpoint]\npowersync_url = \"x\"\n").find("no key to sign") !=
          std::string::npos);
}

TEST_CASE("the metrics count media downloads by how they ended, and their bytes", "[endpoint]") {
    EndpointMetrics m;
    m.media(MediaOutcome::complete, 100);
    m.media(MediaOutcome::complete, 50);
    m.media(MediaOutcome::range, 7);
    m.media(MediaOutcome::failed, 3);
    const std::string text = m.text();
    for (const char* line : {"lestash_endpoint_media_downloads_total{outcome=\"complete\"} 2\n",
                             "lestash_endpoint_media_downloads_total{outcome=\"range\"} 1\n",
                             "lestash_endpoint_media_downloads_total{outcome=\"cut\"} 0\n",
                             "lestash_endpoint_media_downloads_total{outcome=\"failed\"} 1\n",
                             "# TYPE lestash_endpoint_media_bytes_total counter\n"
                             "lestash_endpoint_media_bytes_total 160\n"}) {
        INFO(line);
        CHECK(text.find(line) != std::string::npos);
    }
}

}  // namespace
}  // namespace lestash::test
