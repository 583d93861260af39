// SQLite values written as text where their exact bytes matter: hex for
// bytes, the shortest decimal that reads back as exactly the same double.
// Shared by the UUIDs, the Postgres value mapping and verify.
#pragma once

#include <string>
#include <string_view>

namespace lestash {

std::string to_hex(std::string_view bytes);
// Raises std::invalid_argument for an odd length or a non-hex digit.
std::string from_hex(std::string_view hex);
// Shortest decimal text that reads back as exactly `d`; "Infinity" and
// "-Infinity" as Postgres writes them.
std::string exact_real_text(double d);

}  // namespace lestash
