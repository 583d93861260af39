// The secrets of pairing: random device credentials and one-time pairing
// codes, and the SHA-256 that stores them (Postgres keeps hashes only; the
// secrets are random, so a plain hash is enough, no slow KDF).
#pragma once

#include <string>
#include <string_view>

namespace lestash {

std::string random_bytes(std::size_t n);
std::string sha256(std::string_view data);
// 32 random bytes, base64url: what a paired phone presents to /api/token.
std::string new_device_credential();
// Twelve characters of Crockford's base32 (60 bits) shown as XXXX-XXXX-XXXX.
std::string new_pairing_code();
// A code as typed: upper case, dashes and spaces dropped, O read as 0 and I,
// L as 1; what is hashed.
std::string normalized_pairing_code(std::string_view typed);

}  // namespace lestash
