// Generation of the capture triggers: SQL text built in one place from a
// table's spec and its live columns (PRAGMA table_info), so that a v1 and a
// v11 database both work and an app migration is followed.
#pragma once

#include <string>
#include <vector>

#include "lestash_sync/replica/table_spec.hpp"

namespace lestash {

inline constexpr const char* kObjectPrefix = "_lestash_sync_";

// The capture trigger names the daemon owns for a table.
std::vector<std::string> capture_trigger_names(const std::string& table);
inline std::vector<std::string> capture_trigger_names(const TableSpec& spec) {
    return capture_trigger_names(spec.name);
}

// CREATE TRIGGER statements (one string each) that append every INSERT,
// UPDATE and DELETE of the table to _lestash_sync_outbox, except while the
// engine's own apply flag is set. `columns` are the synced columns of the
// table in the live schema (the local key columns excluded).
std::vector<std::string> capture_trigger_sql(const TableSpec& spec,
                                             const std::vector<std::string>& columns);

}  // namespace lestash
