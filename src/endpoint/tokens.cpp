// JWT verification and signing with OpenSSL (see tokens.hpp).
#include "lestash_sync/endpoint/tokens.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace lestash {
using nlohmann::json;

namespace {

constexpr std::int64_t kLeewaySeconds = 5;
constexpr std::int64_t kLongestLifetime = 24 * 3600;  // the PowerSync service's limit
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    char buf[256] = "unknown OpenSSL error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

std::shared_ptr<EVP_PKEY> owned(EVP_PKEY* key) {
    return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

std::string hmac_sha256(const std::string& key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &n))
        throw std::runtime_error("HMAC-SHA256 failed: " + openssl_error());
    return std::string(reinterpret_cast<const char*>(out.data()), n);
}

bool rsa_verify(EVP_PKEY* key, std::string_view data, const std::string& signature) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    const bool ok =
        ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                         data.size()) == 1;
    ERR_clear_error();
    return ok;
}

std::string rsa_sign(EVP_PKEY* key, std::string_view data) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::size_t n = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1)
        throw std::runtime_error("RS256 signing failed: " + openssl_error());
    std::string out(n, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
        throw std::runtime_error("RS256 signing failed: " + openssl_error());
    out.resize(n);
    return out;
}

std::shared_ptr<EVP_PKEY> rsa_public_key(const std::string& n, const std::string& e) {
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn_n(
        BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()),
                  nullptr),
        BN_free);
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn_e(
        BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()),
                  nullptr),
        BN_free);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                          OSSL_PARAM_BLD_free);
    if (!bn_n || !bn_e || !build ||
        !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
        !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
        throw std::runtime_error(openssl_error());
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
        OSSL_PARAM_BLD_to_param(build.get()), OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
        throw std::runtime_error(openssl_error());
    return owned(key);
}

std::string bn_param(EVP_PKEY* key, const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        throw std::runtime_error(openssl_error());
    std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return out;
}

json decode_part(std::string_view part, const char* what) {
    std::string text;
    try {
        text = base64url_decode(part);
    } catch (const std::invalid_argument&) {
        throw AuthError(std::string("the token's ") + what + " is not base64url");
    }
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw AuthError(std::string("the token's ") + what + " is not a JSON object");
    return j;
}

std::int64_t time_claim(const json& claims, const char* name, bool required) {
    const auto it = claims.find(name);
    if (it == claims.end()) {
        if (required)
            throw AuthError(std::string("the token has no \"") + name + "\" claim");
        return 0;
    }
    if (!it->is_number())
        throw AuthError(std::string("the token's \"") + name + "\" is not a number");
    return static_cast<std::int64_t>(it->get<double>());
}

bool audience_matches(const json& claims, const std::string& audience) {
    const auto aud = claims.find("aud");
    if (aud == claims.end())
        return false;
    if (aud->is_string())
        return aud->get<std::string>() == audience;
    if (aud->is_array())
        for (const auto& a : *aud)
            if (a.is_string() && a.get<std::string>() == audience)
                return true;
    return false;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : bytes) {
        buffer = (buffer << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kAlphabet[(buffer >> bits) & 63];
        }
    }
    if (bits > 0)
        out += kAlphabet[(buffer << (6 - bits)) & 63];
    return out;
}

std::string base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1)
        throw std::invalid_argument("base64url: impossible length");
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : text) {
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else
            throw std::invalid_argument("base64url: unexpected character");
        buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xff);
        }
    }
    if ((buffer & ((1u << bits) - 1)) != 0)
        throw std::invalid_argument("base64url: stray bits at the end");
    return out;
}

KeySet KeySet::from_jwks(const json& jwks, const std::string& where) {
    if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array())
        throw ConfigError(where + ": not a JWKS: expected {\"keys\": [...]}");
    KeySet set;
    for (const auto& k : jwks["keys"]) {
        const std::string kty = k.value("kty", ""), kid = k.value("kid", "");
        const std::string alg = k.value("alg", kty == "oct" ? "HS256" : "RS256");
        try {
            if (kty == "oct" && alg == "HS256") {
                set.add(hs256_key(kid, k.value("k", ""), where));
            } else if (kty == "RSA" && alg == "RS256") {
                set.add({kid, alg, "",
                         rsa_public_key(base64url_decode(k.value("n", "")),
                                        base64url_decode(k.value("e", "")))});
            } else {
                throw ConfigError(where + ": key \"" + kid + "\" is " + kty + "/" + alg +
                                  "; only oct/HS256 and RSA/RS256 keys are supported");
            }
        } catch (const std::invalid_argument&) {
            throw ConfigError(where + ": key \"" + kid + "\" has a value that is not base64url");
        } catch (const std::runtime_error& e) {
            if (dynamic_cast<const ConfigError*>(&e))
                throw;
            throw ConfigError(where + ": key \"" + kid + "\" is not a usable RSA key: " + e.what());
        }
    }
    return set;
}

const JwtKey* KeySet::find(const std::string& kid, const std::string& alg) const {
    const JwtKey* only = nullptr;
    int of_alg = 0;
    for (const auto& k : keys_) {
        if (k.alg != alg)
            continue;
        if (!kid.empty() && k.kid == kid)
            return &k;
        ++of_alg;
        only = &k;
    }
    return kid.empty() && of_alg == 1 ? only : nullptr;
}

TokenClaims verify_token(std::string_view token, const KeySet& keys, const std::string& audience,
                         std::int64_t now) {
    const auto first = token.find('.');
    const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        throw AuthError("not a JWT (three base64url parts separated by dots)");
    const json header = decode_part(token.substr(0, first), "header");
    const std::string alg = header.value("alg", "");
    if (alg != "HS256" && alg != "RS256")
        throw AuthError("the token is signed with \"" + alg.substr(0, 20) +
                        "\"; only HS256 and RS256 are accepted");
    const std::string kid =
        header.contains("kid") && header["kid"].is_string() ? header["kid"].get<std::string>() : "";
    const JwtKey* key = keys.find(kid, alg);
    if (!key)
        throw AuthError("no " + alg + " key " +
                        (kid.empty() ? "" : "\"" + kid.substr(0, 40) + "\" ") + "is trusted here");
    std::string signature;
    try {
        signature = base64url_decode(token.substr(second + 1));
    } catch (const std::invalid_argument&) {
        throw AuthError("the token's signature is not base64url");
    }
    const std::string_view signed_part = token.substr(0, second);
    const bool good =
        alg == "HS256"
            ? signature.size() == 32 && CRYPTO_memcmp(hmac_sha256(key->secret, signed_part).data(),
                                                      signature.data(), 32) == 0
            : rsa_verify(key->key.get(), signed_part, signature);
    if (!good)
        throw AuthError("the token's signature does not verify");

    const json claims = decode_part(token.substr(first + 1, second - first - 1), "payload");
    const std::int64_t exp = time_claim(claims, "exp", true);
    if (exp + kLeewaySeconds <= now)
        throw AuthError("the token expired " + std::to_string(now - exp) + " s ago");
    if (claims.contains("nbf") && time_claim(claims, "nbf", false) > now + kLeewaySeconds)
        throw AuthError("the token is not valid yet (nbf)");
    if (claims.contains("iat")) {
        const std::int64_t iat = time_claim(claims, "iat", false);
        if (iat > now + kLeewaySeconds)
            throw AuthError("the token was issued in the future (iat): check the clocks");
        if (exp - iat > kLongestLifetime)
            throw AuthError("the token lives longer than a day");
    } else if (exp - now > kLongestLifetime) {
        throw AuthError("the token lives longer than a day");
    }
    if (!audience_matches(claims, audience))
        throw AuthError("the token is not for audience \"" + audience + "\"");
    const auto sub = claims.find("sub");
    if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty())
        throw AuthError("the token names no subject (sub)");
    return {sub->get<std::string>(), exp};
}

std::string sign_token(const JwtKey& key, const json& claims) {
    json header = {{"alg", key.alg}, {"typ", "JWT"}};
    if (!key.kid.empty())
        header["kid"] = key.kid;
    const std::string signed_part =
        base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
    const std::string signature = key.alg == "HS256" ? hmac_sha256(key.secret, signed_part)
                                                     : rsa_sign(key.key.get(), signed_part);
    return signed_part + "." + base64url_encode(signature);
}

JwtKey hs256_key(const std::string& kid, const std::string& text, const std::string& where) {
    std::string secret;
    try {
        secret = base64url_decode(text);
    } catch (const std::invalid_argument&) {
        throw ConfigError(where +
                          ": the HS256 key is not base64url (scripts/powersync-token "
                          "--new-key makes one)");
    }
    if (secret.size() < 32)
        throw ConfigError(where + ": the HS256 key is " + std::to_string(secret.size()) +
                          " bytes; use at least 32 (scripts/powersync-token --new-key)");
    return {kid, "HS256", secret, nullptr};
}

JwtKey rs256_private_key(const std::string& kid, const std::string& pem_path) {
    FILE* f = std::fopen(pem_path.c_str(), "rb");
    if (!f)
        throw ConfigError("cannot read the RS256 key " + pem_path +
                          " — make one: openssl genpkey -algorithm RSA -pkeyopt "
                          "rsa_keygen_bits:2048 -out " +
                          pem_path);
    EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!key)
        throw ConfigError(pem_path + " is not a PEM private key: " + openssl_error());
    auto held = owned(key);
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        throw ConfigError(pem_path + " is not an RSA key (RS256 needs one)");
    return {kid, "RS256", "", held};
}

json public_jwk(const JwtKey& key) {
    return {{"kty", "RSA"},
            {"alg", "RS256"},
            {"kid", key.kid},
            {"n", base64url_encode(bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_N))},
            {"e", base64url_encode(bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_E))}};
}

}  // namespace lestash
