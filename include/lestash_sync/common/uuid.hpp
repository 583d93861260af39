// Global row identities. Rows get a name-based UUID (RFC 4122 version 3,
// MD5, which Postgres can compute with its built-in md5() for rows written
// there directly) when their table has a natural key, so two devices
// importing the same post independently converge on one row; otherwise a
// random version 4 UUID.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lestash {

// The namespace every name-based row UUID of lestash-sync is derived in.
// Fixed forever: changing it would give every natural-key row a new identity.
// migrations/postgres/002_change_capture.sql holds the same value.
inline constexpr std::string_view kRowNamespace = "6f1c6a5e-2b0d-5a57-9a1e-1e57a5c0de01";

// Canonical lowercase 8-4-4-4-12 text form.
std::string random_uuid();
std::string name_based_uuid(std::string_view namespace_uuid, std::string_view name);
bool is_uuid(std::string_view text);
// The 16 raw bytes of a UUID (how the replica stores it) and back.
std::string uuid_to_bytes(std::string_view text);
std::string uuid_from_bytes(std::string_view bytes);

}  // namespace lestash
