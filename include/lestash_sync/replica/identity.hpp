// The identity map (_lestash_sync_ids): (table, local id) <-> global UUID,
// with the server revision each row was last seen at; and the rules that
// give a row its UUID (see table_spec.hpp and docs/architecture.md). This
// module owns every statement on the table, the capture triggers' included.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace lestash {

struct Mapping {
    std::int64_t local_id = 0;
    std::string uuid;
    std::optional<std::int64_t> server_rev;
};

class IdentityMap {
  public:
    explicit IdentityMap(sqlite::Connection& db);

    std::optional<Mapping> by_local_id(const std::string& table, std::int64_t local_id);
    std::optional<Mapping> by_uuid(const std::string& table, const std::string& uuid);
    // Records the mapping, replacing whatever mapping the local id or the
    // UUID had before.
    void set(const std::string& table, std::int64_t local_id, const std::string& uuid,
             std::optional<std::int64_t> server_rev);
    void set_server_rev(const std::string& uuid, std::int64_t rev);
    void forget(const std::string& uuid);
    // The UUID of every row of `table` that has one here.
    std::vector<std::string> uuids_of(const std::string& table);

    // SQL text for the capture triggers, `local_id` being an expression
    // (OLD."id"): the UUID that row of `table` has (NULL when none), and
    // the statement that forgets it, so a new row taking over a deleted
    // row's rowid does not inherit its identity.
    static std::string uuid_sql(const std::string& table, const std::string& local_id);
    static std::string forget_sql(const std::string& table, const std::string& local_id);

  private:
    sqlite::Connection& db_;
    sqlite::Statement by_local_, by_uuid_, forget_uuid_, insert_, set_rev_;
};

// The UUID a row gets the first time it is pushed: name-based from the
// natural key when the table has one and no key value is NULL, else random.
// `key_values` are the natural key columns in spec order.
std::string new_row_uuid(const TableSpec& spec, const std::vector<sqlite::Value>& key_values);
// The UUID of a link row (item_tags) from its parents' UUIDs, in spec order.
std::string link_row_uuid(const TableSpec& spec, const std::vector<std::string>& parent_uuids);

}  // namespace lestash
