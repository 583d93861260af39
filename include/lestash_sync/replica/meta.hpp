// The replica's own key/value state (_lestash_sync_meta): its id and name,
// the version of the daemon's objects, the pull cursor, the columns each
// table syncs. This module owns every statement on the table.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

class ReplicaMeta {
  public:
    explicit ReplicaMeta(sqlite::Connection& db) : db_(db) {}

    std::optional<std::string> get(const std::string& key);
    void set(const std::string& key, const std::string& value);
    void erase(const std::string& key);
    // The keys that start with `prefix`.
    std::vector<std::string> keys_with_prefix(const std::string& prefix);
    // The version of the daemon's objects recorded in the database; 0 when
    // there are none yet (the table itself does not exist).
    int objects_version();

  private:
    sqlite::Connection& db_;
};

}  // namespace lestash
