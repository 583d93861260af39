// MD5, only because Postgres has md5() built in: verify hashes canonical rows
// the same way on both sides. Not used for anything that needs security.
#pragma once

#include <string>
#include <string_view>

namespace lestash {

// Lowercase hex digest, as Postgres' md5(text) returns it.
std::string md5_hex(std::string_view bytes);

}  // namespace lestash
