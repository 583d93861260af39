// What a pull holds back in the replica between cycles, one owner module
// per table:
//  - DeferredRows (_lestash_sync_deferred): remote changes not applied yet
//    because the row has local edits still in the outbox; fetched again once
//    those are pushed.
//  - UnresolvedReferences (_lestash_sync_unresolved): references that arrived
//    before the row they point to; the column stays NULL until it arrives.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

class DeferredRows {
  public:
    explicit DeferredRows(sqlite::Connection& db);

    void add(const std::string& table, const std::string& uuid);
    void remove(const std::string& table, const std::string& uuid);
    bool any();
    // (table, uuid) of every row held back.
    std::vector<std::pair<std::string, std::string>> all();

  private:
    sqlite::Connection& db_;
    sqlite::Statement insert_, delete_;
};

struct UnresolvedReference {
    std::string table;
    std::int64_t local_id = 0;
    std::string column;
    std::string parent_uuid;
};

class UnresolvedReferences {
  public:
    explicit UnresolvedReferences(sqlite::Connection& db);

    // Replaces what is noted for the row with `references` (column, the
    // UUID of the row it points to).
    void replace(const std::string& table, std::int64_t local_id,
                 const std::vector<std::pair<std::string, std::string>>& references);
    // The reference has been filled in.
    void resolved(const std::string& table, std::int64_t local_id, const std::string& column);
    bool any();
    std::vector<UnresolvedReference> all();

  private:
    sqlite::Connection& db_;
    sqlite::Statement forget_row_, insert_, delete_;
};

}  // namespace lestash
