// Reading the replica's rows the way the engine needs them: by local key,
// with a statement cache for the rows of one batch. Shared by push, apply
// and verify; private to the engine.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/engine/sync_engine.hpp"

namespace lestash::detail {

// Prepared statements reused across the rows of one batch, keyed by SQL.
class StatementCache {
  public:
    explicit StatementCache(sqlite::Connection& db) : db_(db) {}
    sqlite::Statement& get(const std::string& sql);
    sqlite::Connection& db() { return db_; }

  private:
    sqlite::Connection& db_;
    std::map<std::string, std::unique_ptr<sqlite::Statement>> statements_;
};

// "SELECT c1, c2 FROM t WHERE <local key> = ?"; for link tables the key is
// every local key column.
std::string select_row_sql(const TableMapping& m);
// Reads the mapped columns of one local row; nullopt when it is gone.
// `key` is the local id (rowid tables) or the link key values.
std::optional<std::vector<sqlite::Value>> read_local_row(StatementCache& cache,
                                                         const TableMapping& m,
                                                         const std::vector<sqlite::Value>& key);
// Values of the local key of a link row from its outbox row_key JSON.
std::vector<sqlite::Value> link_key_values(const std::string& row_key_json);

std::string uuid_array_literal(const std::vector<std::string>& uuids);

}  // namespace lestash::detail
