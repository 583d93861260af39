// lestash-endpoint's configuration: a TOML file (config/endpoint.toml.example
// documents every key), with the secrets in files of their own or the
// environment, never in the file itself.
#pragma once

#include <string>

#include "lestash_sync/endpoint/tokens.hpp"

namespace lestash {

struct EndpointConfig {
    // [endpoint]
    std::string listen = "127.0.0.1";
    int port = 8090;
    std::string public_url;     // how a phone reaches this endpoint (the QR code holds it)
    std::string powersync_url;  // how a phone reaches the PowerSync service (/api/token says)
    std::size_t max_body_bytes = 4 * 1024 * 1024;
    int max_concurrent_requests = 8;
    int read_timeout_seconds = 30;
    int write_timeout_seconds = 30;
    std::string tls_cert_file, tls_key_file;  // both or neither
    // [postgres]
    std::string conninfo;
    // [tokens]
    std::string audience = "lestash-powersync";
    int token_lifetime_seconds = 300;
    int pairing_code_minutes = 10;
    // Tokens are signed with `signing`; uploads are accepted with any key of
    // `trusted` (the signing key and the keys of jwks_file).
    JwtKey signing;
    KeySet trusted;
};

// Reads `path`; the HS256 key comes from tokens.hs256_key_file or the
// environment variable LESTASH_ENDPOINT_HS256_KEY. Raises ConfigError
// saying which key is wrong and how to fix it.
EndpointConfig load_endpoint_config(const std::string& path);

}  // namespace lestash
