// Reading endpoint.toml (see endpoint_config.hpp).
#include "lestash_sync/endpoint/endpoint_config.hpp"

#include <toml++/toml.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include "lestash_sync/common/text.hpp"

namespace lestash {

namespace {

const std::set<std::string>& known_keys(const std::string& section) {
    static const std::set<std::string> endpoint = {"listen",
                                                   "port",
                                                   "public_url",
                                                   "powersync_url",
                                                   "max_body_bytes",
                                                   "max_concurrent_requests",
                                                   "read_timeout_seconds",
                                                   "write_timeout_seconds",
                                                   "tls_cert_file",
                                                   "tls_key_file"};
    static const std::set<std::string> postgres = {"conninfo"};
    static const std::set<std::string> tokens = {
        "audience",       "lifetime_seconds", "pairing_code_minutes",
        "hs256_key_file", "hs256_kid",        "rs256_private_key_file",
        "rs256_kid",      "jwks_file"};
    static const std::set<std::string> none;
    return section == "endpoint"   ? endpoint
           : section == "postgres" ? postgres
           : section == "tokens"   ? tokens
                                   : none;
}

std::string read_secret_file(const std::string& path, const std::string& key) {
    std::ifstream in(path);
    if (!in)
        throw ConfigError("tokens." + key + " = \"" + path + "\": cannot read the file");
    return trim_end({std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()});
}

template <typename T>
T get(const toml::table& t, const std::string& section, const char* key, T fallback) {
    const auto* s = t[section].as_table();
    if (!s || !s->contains(key))
        return fallback;
    const auto v = (*s)[key].value<T>();
    if (!v)
        throw ConfigError(section + "." + key + " has the wrong type");
    return *v;
}

int positive(int v, const std::string& key) {
    if (v <= 0)
        throw ConfigError(key + " must be more than 0");
    return v;
}

}  // namespace

EndpointConfig load_endpoint_config(const std::string& path) {
    toml::table t;
    try {
        t = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        throw ConfigError(path + ":" + std::to_string(e.source().begin.line) + ": " +
                          std::string(e.description()));
    }
    for (const auto& [section, value] : t) {
        const std::string name(section.str());
        const auto& keys = known_keys(name);
        if (keys.empty() || !value.is_table())
            throw ConfigError(path + ": unknown section [" + name +
                              "]; the sections are [endpoint], [postgres] and [tokens]");
        for (const auto& [key, _] : *value.as_table())
            if (!keys.count(std::string(key.str())))
                throw ConfigError(path + ": unknown key " + name + "." + std::string(key.str()) +
                                  " (config/endpoint.toml.example lists them)");
    }
    EndpointConfig c;
    c.listen = get<std::string>(t, "endpoint", "listen", c.listen);
    c.port = static_cast<int>(get<std::int64_t>(t, "endpoint", "port", c.port));
    if (c.port < 0 || c.port > 65535)
        throw ConfigError(path + ": endpoint.port must be 0 to 65535");
    c.public_url = get<std::string>(t, "endpoint", "public_url", "");
    c.powersync_url = get<std::string>(t, "endpoint", "powersync_url", "");
    if (c.powersync_url.empty())
        throw ConfigError(path +
                          ": endpoint.powersync_url is required: the URL phones reach the "
                          "PowerSync service at (what /api/token answers)");
    c.max_body_bytes = static_cast<std::size_t>(
        positive(static_cast<int>(get<std::int64_t>(t, "endpoint", "max_body_bytes",
                                                    static_cast<std::int64_t>(c.max_body_bytes))),
                 "endpoint.max_body_bytes"));
    c.max_concurrent_requests =
        positive(static_cast<int>(get<std::int64_t>(t, "endpoint", "max_concurrent_requests", 8)),
                 "endpoint.max_concurrent_requests");
    c.read_timeout_seconds =
        positive(static_cast<int>(get<std::int64_t>(t, "endpoint", "read_timeout_seconds", 30)),
                 "endpoint.read_timeout_seconds");
    c.write_timeout_seconds =
        positive(static_cast<int>(get<std::int64_t>(t, "endpoint", "write_timeout_seconds", 30)),
                 "endpoint.write_timeout_seconds");
    c.tls_cert_file = get<std::string>(t, "endpoint", "tls_cert_file", "");
    c.tls_key_file = get<std::string>(t, "endpoint", "tls_key_file", "");
    if (c.tls_cert_file.empty() != c.tls_key_file.empty())
        throw ConfigError(path +
                          ": give both endpoint.tls_cert_file and endpoint.tls_key_file, "
                          "or neither (then put a TLS reverse proxy in front)");

    c.conninfo = get<std::string>(t, "postgres", "conninfo", "");
    c.audience = get<std::string>(t, "tokens", "audience", c.audience);
    c.token_lifetime_seconds =
        positive(static_cast<int>(get<std::int64_t>(t, "tokens", "lifetime_seconds", 300)),
                 "tokens.lifetime_seconds");
    if (c.token_lifetime_seconds > 24 * 3600)
        throw ConfigError(path +
                          ": tokens.lifetime_seconds is at most 86400 (the PowerSync "
                          "service refuses longer tokens)");
    c.pairing_code_minutes =
        positive(static_cast<int>(get<std::int64_t>(t, "tokens", "pairing_code_minutes", 10)),
                 "tokens.pairing_code_minutes");

    const std::string where = path + ": tokens";
    const std::string hs256_file = get<std::string>(t, "tokens", "hs256_key_file", "");
    const char* hs256_env = std::getenv("LESTASH_ENDPOINT_HS256_KEY");
    std::string hs256_text = hs256_file.empty() ? (hs256_env ? hs256_env : "")
                                                : read_secret_file(hs256_file, "hs256_key_file");
    const std::string rs256_file = get<std::string>(t, "tokens", "rs256_private_key_file", "");
    if (!hs256_text.empty()) {
        c.signing = hs256_key(get<std::string>(t, "tokens", "hs256_kid", "lestash-hs256"),
                              hs256_text, where);
        c.trusted.add(c.signing);
    }
    if (!rs256_file.empty()) {
        const std::string kid = get<std::string>(t, "tokens", "rs256_kid", "");
        if (kid.empty())
            throw ConfigError(path +
                              ": tokens.rs256_kid is required with rs256_private_key_file "
                              "(the kid of its public key in PowerSync's jwks)");
        c.signing = rs256_private_key(kid, rs256_file);  // RS256 signs when both are given
        c.trusted.add(c.signing);
    }
    if (const auto jwks_file = get<std::string>(t, "tokens", "jwks_file", ""); !jwks_file.empty()) {
        std::ifstream in(jwks_file);
        if (!in)
            throw ConfigError(path + ": tokens.jwks_file = \"" + jwks_file + "\": cannot read it");
        const auto jwks = nlohmann::json::parse(in, nullptr, false);
        const KeySet keys = KeySet::from_jwks(jwks, jwks_file);
        for (const auto& key : keys.keys()) c.trusted.add(key);
    }
    if (c.signing.alg.empty())
        throw ConfigError(path +
                          ": no key to sign tokens with: set tokens.hs256_key_file (the "
                          "PowerSync service's PS_JWT_HS256_KEY) or the environment "
                          "variable LESTASH_ENDPOINT_HS256_KEY, or "
                          "tokens.rs256_private_key_file");
    return c;
}

}  // namespace lestash
