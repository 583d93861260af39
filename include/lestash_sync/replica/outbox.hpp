// The outbox (_lestash_sync_outbox): local changes waiting to be pushed, in
// commit order. The capture triggers append to it, the push reads it and
// removes what Postgres has; this module owns every statement on the table,
// the SQL text the triggers run included.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace lestash {

// One captured local change.
struct OutboxEntry {
    std::int64_t seq = 0;
    std::string table;
    char op = 'I';                         // 'I', 'U' or 'D'
    std::optional<std::int64_t> local_id;  // rowid-keyed tables
    std::string row_key;                   // link tables: JSON array of local key values
    std::optional<std::string> row_uuid;   // deletes: identity at delete time
    std::string link_uuids;                // link-table deletes: JSON array of parent UUIDs
    std::vector<std::string> changed;      // updates: changed columns
    std::string captured_at;
};

class Outbox {
  public:
    explicit Outbox(sqlite::Connection& db) : db_(db) {}

    // Entries after `after_seq`, oldest first, at most `limit`.
    std::vector<OutboxEntry> read(std::int64_t after_seq, int limit);
    std::int64_t depth();
    bool empty();
    // Age of the oldest entry in seconds (to the millisecond); 0 when empty.
    double lag_seconds();
    // Removes every entry up to and including `seq`: Postgres has them.
    void drop_through(std::int64_t seq);
    // (table, local key) of each row with a change not pushed yet: the local
    // id as text for rowid-keyed tables, the key's JSON array for link tables.
    std::set<std::pair<std::string, std::string>> pending_rows();
    // (table, local id) of each rowid-keyed row with a change not pushed yet.
    std::set<std::pair<std::string, std::int64_t>> pending_local_ids();
    // Queues every row of the table (`where`: an SQL condition, or empty)
    // as an `op` change of the columns `changed` (an SQL expression; NULL
    // for all): a table captured for the first time, a column just added.
    void enqueue_rows(const TableSpec& spec, char op, const std::string& changed,
                      const std::string& where);
    // Queues one row (`key`: its local key values) as an `op` change of
    // `changed` (empty: all columns), as if the app had written it: verify
    // --repair sends values Postgres never got this way.
    void enqueue_row(const TableSpec& spec, char op, const std::vector<sqlite::Value>& key,
                     const std::vector<std::string>& changed);

    // The statement a capture trigger runs to record one change, as SQL
    // text. `key` is the row's local key (an expression such as NEW."id",
    // or a JSON array of the key columns for link tables). `detail` is, for
    // a delete, the identity the row had (its UUID; for link tables the
    // parents' UUIDs as a JSON array), else the changed columns (NULL: all).
    static std::string capture_sql(const TableSpec& spec, char op, const std::string& key,
                                   const std::string& detail);

  private:
    sqlite::Connection& db_;
};

}  // namespace lestash
