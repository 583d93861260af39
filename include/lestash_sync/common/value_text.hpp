// SQLite values written as text where their exact bytes matter: hex for
// bytes, the shortest decimal that reads back as exactly the same double,
// and one value with its storage class. Shared by the UUIDs, the Postgres
// value mapping and verify.
#pragma once

#include <string>
#include <string_view>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

std::string to_hex(std::string_view bytes);
// Raises std::invalid_argument for an odd length or a non-hex digit.
std::string from_hex(std::string_view hex);
// Shortest decimal text that reads back as exactly `d`; "Infinity" and
// "-Infinity" as Postgres writes them.
std::string exact_real_text(double d);

// How tagged_value writes TEXT: as it is, or as the hex of its bytes.
enum class TextAs { raw, hex };
// The value with its storage class first, so 1 and '1' differ: "i:42",
// "r:1.5", "t:abc" (or "t:616263"), "b:00ff", "n". Natural-key UUIDs are
// named with raw text (lestash.key_part in migrations/postgres/002 does the
// same); verify's row hashes use hex, as canonical_sql does upstream.
// Changing either form changes every identity or every hash.
std::string tagged_value(const sqlite::Value& v, TextAs text);

}  // namespace lestash
