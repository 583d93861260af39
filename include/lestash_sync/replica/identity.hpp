// The identity map (_lestash_sync_ids): (table, local id) <-> global UUID,
// with the server revision each row was last seen at, and the revisions of
// link rows (_lestash_sync_link_revs); and the rules that give a row its
// UUID (see table_spec.hpp and docs/architecture.md). This module owns
// every statement on both tables, the capture triggers' included.
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
    // Whether any row has one.
    bool any();

    // Link rows (_lestash_sync_link_revs): the revision this replica last
    // saw of the link row with that UUID, if it ever saw one.
    std::optional<std::int64_t> link_rev(const std::string& uuid);
    void set_link_rev(const std::string& table, const std::string& uuid, std::int64_t rev);
    void forget_link(const std::string& uuid);

    // SQL text for the capture triggers, `local_id` being an expression
    // (OLD."id"): the UUID that row of `table` has (NULL when none), and
    // the statement that forgets it, so a new row taking over a deleted
    // row's rowid does not inherit its identity.
    static std::string uuid_sql(const std::string& table, const std::string& local_id);
    static std::string forget_sql(const std::string& table, const std::string& local_id);

  private:
    sqlite::Statement& link_statement(std::optional<sqlite::Statement>& slot, const char* sql);

    sqlite::Connection& db_;
    sqlite::Statement by_local_, by_uuid_, forget_uuid_, insert_, set_rev_;
    // Prepared on first use: only the engine's connection needs them.
    std::optional<sqlite::Statement> link_rev_, set_link_rev_, forget_link_;
};

// One natural-key value as it is named: its storage class and value,
// "t:abc", "i:42" (tagged_value with raw text); nullopt for NULL.
std::optional<std::string> natural_key_part(const sqlite::Value& value);
// The UUID a row gets the first time it is pushed: name-based from the
// natural key when the table has one and no key value is NULL, else random.
// `key_parts` are the natural key columns in spec order, each named by
// natural_key_part, or for a reference (syndications.item_id) the UUID of
// the row it points to; nullopt for NULL. Postgres names rows the same way
// (lestash.natural_row_id, migrations/postgres/007).
std::string new_row_uuid(const TableSpec& spec,
                         const std::vector<std::optional<std::string>>& key_parts);
// The UUID of a link row (item_tags) from its parents' UUIDs, in spec order.
std::string link_row_uuid(const TableSpec& spec, const std::vector<std::string>& parent_uuids);

}  // namespace lestash
