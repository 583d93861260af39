// How a SQLite value travels to a Postgres column and back, exactly: same
// storage class, same bytes. A value the typed column cannot carry goes to
// the row's _sqlite override object instead (see migrations/postgres/001).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

enum class PgType { text, bigint, boolean, float8, bytea, uuid };

PgType pg_type_from_name(std::string_view data_type);  // information_schema data_type
const char* pg_type_sql(PgType t);

// The JSON value for the typed column (null when the value goes to the
// override), and the override entry when one is needed.
struct EncodedValue {
    nlohmann::json typed;
    std::optional<nlohmann::json> override_entry;
};
EncodedValue encode_value(const sqlite::Value& v, PgType type);

// Back from Postgres: `text` is the column in libpq text format, or nullopt
// for NULL; `override_entry` is _sqlite -> column when present.
sqlite::Value decode_value(const std::optional<std::string>& text, PgType type,
                           const nlohmann::json* override_entry);

bool is_valid_utf8(std::string_view s);

}  // namespace lestash
