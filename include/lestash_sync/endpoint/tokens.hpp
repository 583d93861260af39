// PowerSync JWTs: verifying the tokens phones send with their uploads
// (HS256 with a shared key, RS256 with the public keys of a JWKS: the keys
// the PowerSync service trusts, config/powersync/powersync.yaml) and
// signing the short-lived ones the token endpoint hands to paired devices.
// OpenSSL does the cryptography; the key for a token is chosen by its kid
// and alg together, so a token can never make an RSA public key serve as an
// HMAC secret.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "lestash_sync/common/error.hpp"

using EVP_PKEY = struct evp_pkey_st;

namespace lestash {

// A token refused: the reason, for the log and the 401's message.
class AuthError : public Error {
  public:
    using Error::Error;
};

struct JwtKey {
    std::string kid;
    std::string alg;                // "HS256" or "RS256"
    std::string secret;             // HS256
    std::shared_ptr<EVP_PKEY> key;  // RS256: the public key, or the key pair to sign with
};

class KeySet {
  public:
    // The keys of a JWKS ({"keys": [...]}): kty oct (HS256, k) and kty RSA
    // (RS256, n and e); raises ConfigError naming a key it cannot use.
    static KeySet from_jwks(const nlohmann::json& jwks, const std::string& where);
    void add(JwtKey key) { keys_.push_back(std::move(key)); }
    // The key for a token's header: by kid when it has one, else the only key
    // of that alg.
    const JwtKey* find(const std::string& kid, const std::string& alg) const;
    bool empty() const { return keys_.empty(); }
    const std::vector<JwtKey>& keys() const { return keys_; }

  private:
    std::vector<JwtKey> keys_;
};

struct TokenClaims {
    std::string subject;  // the device's id
    std::int64_t expires_at = 0;
};

// Checks signature, exp (required), nbf, iat (not in the future, the token
// living at most a day, as the PowerSync service requires) and aud; `now`
// in Unix seconds. Raises AuthError saying which check failed.
TokenClaims verify_token(std::string_view token, const KeySet& keys, const std::string& audience,
                         std::int64_t now);

// A compact JWS of `claims` signed with `key` (HS256 secret or RS256 key pair).
std::string sign_token(const JwtKey& key, const nlohmann::json& claims);

// Key material: an HS256 key from its base64url text (PS_JWT_HS256_KEY's
// format, at least 32 bytes); an RSA key pair from a PEM file. Raise ConfigError.
JwtKey hs256_key(const std::string& kid, const std::string& base64url, const std::string& where);
JwtKey rs256_private_key(const std::string& kid, const std::string& pem_path);
// The public JWK ({"kty": "RSA", "n", "e", ...}) of an RS256 key, for the
// PowerSync service's client_auth.jwks.
nlohmann::json public_jwk(const JwtKey& key);

std::string base64url_encode(std::string_view bytes);
// Strict: the URL alphabet without padding; raises std::invalid_argument.
std::string base64url_decode(std::string_view text);

}  // namespace lestash
