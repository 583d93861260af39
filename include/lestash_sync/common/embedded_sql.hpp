// SQL files compiled into the binaries (migrations/sqlite, migrations/postgres)
// so an installed daemon needs nothing beside itself to create or upgrade.
#pragma once

#include <string_view>
#include <vector>

namespace lestash {

struct EmbeddedSql {
    std::string_view name;  // e.g. "sqlite/daemon-001.sql"
    std::string_view text;
};

// All embedded files, sorted by name.
const std::vector<EmbeddedSql>& embedded_sql();
// The files under one folder ("sqlite/" or "postgres/"), in name order.
std::vector<EmbeddedSql> embedded_sql_under(std::string_view folder);

}  // namespace lestash
