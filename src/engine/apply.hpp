// Apply: rows fetched from Postgres written into the replica, inside one
// ApplyScope (so capture ignores them): references translated from UUIDs to
// local ids, the same post imported here too merged by its natural key, rows
// with local edits still in the outbox held back, the app's history rows of
// our own updates removed. Private to the engine (pull.cpp drives it).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/held_back.hpp"
#include "local_rows.hpp"

namespace lestash::detail {

// One row as Postgres has it now, or its absence (deleted upstream).
struct FetchedRow {
    std::string uuid;
    bool exists = false;
    std::vector<std::optional<std::string>> values;  // libpq text per mapped column
    std::int64_t rev = 0;
    nlohmann::json overrides;  // _sqlite, or null
};

using RowsToApply = std::vector<std::pair<const TableMapping*, const FetchedRow*>>;

// Upserts with parents first, then deletes with children first.
RowsToApply apply_order(const std::vector<TableMapping>& maps,
                        const std::map<std::string, std::vector<FetchedRow>>& rows);

// Applies fetched rows inside one ApplyScope (the caller's).
class RowApplier {
  public:
    RowApplier(sqlite::Connection& db, IdentityMap& ids, const std::vector<TableMapping>& maps);

    // Applies rows in the order given (see apply_order).
    PullStats apply(const RowsToApply& rows);
    // Deletes local rows that have an identity but are no longer upstream
    // (after a full resync); rows with pending local edits stay, and so do
    // rows Postgres never had (see never_upstream).
    void remove_all_except(const TableMapping& m, const std::set<std::string>& upstream);

  private:
    static std::string column_list(const TableMapping& m);
    static std::string placeholders(const TableMapping& m);

    bool is_pending(const TableMapping& m, const std::string& key) const;
    void defer(const TableMapping& m, const std::string& uuid);
    void undefer(const TableMapping& m, const std::string& uuid);
    // Decodes the fetched values; references become local ids (or NULL with
    // a note to fill them in when the row they point to arrives).
    std::vector<sqlite::Value> decode(const TableMapping& m, const FetchedRow& row,
                                      std::vector<std::pair<std::string, std::string>>& unresolved);
    std::optional<std::int64_t> find_by_natural_key(const TableMapping& m,
                                                    const std::vector<sqlite::Value>& values);
    void upsert(const TableMapping& m, const FetchedRow& row);
    void upsert_link(const TableMapping& m, const FetchedRow& row,
                     const std::vector<sqlite::Value>& values);
    // The columns of a link row outside its key (`key`: the local key values).
    void update_link_row(const TableMapping& m, const std::vector<sqlite::Value>& key,
                         const std::vector<sqlite::Value>& values);
    std::int64_t insert_row(const TableMapping& m, const std::vector<sqlite::Value>& values);
    void update_row(const TableMapping& m, std::int64_t local_id,
                    const std::vector<sqlite::Value>& values);
    void note_unresolved(const TableMapping& m, std::int64_t local_id,
                         const std::vector<std::pair<std::string, std::string>>& unresolved);
    // References that arrived before the row they point to, now resolvable.
    void resolve_pending_references();
    // Whether a row missing upstream is one Postgres never had: its insert
    // was refused (a dead letter) and no revision of it was ever seen here
    // (`acknowledged`). A resync, verify --repair or a re-fetch finds such
    // a row missing; it is the user's, and remove() keeps it.
    bool never_upstream(const TableMapping& m, const std::string& uuid, bool acknowledged);
    void remove(const TableMapping& m, const std::string& uuid);
    // A link row's UUID derives from its parents'; find which local row has it.
    void remove_link(const TableMapping& m, const std::string& uuid);
    std::map<std::string, std::vector<sqlite::Value>>& link_index(const TableMapping& m);

    sqlite::Connection& db_;
    StatementCache sql_;
    IdentityMap& ids_;
    const std::vector<TableMapping>& maps_;
    DeferredRows deferred_;
    UnresolvedReferences unresolved_;
    std::set<std::pair<std::string, std::string>> pending_;  // rows with unpushed edits
    bool had_deferred_ = false;
    bool had_unresolved_ = false;
    std::map<std::string, std::map<std::string, std::vector<sqlite::Value>>> link_indexes_;
    std::map<std::string, std::set<std::string>> refused_inserts_;  // by table, read on first use
    PullStats stats_;
};

}  // namespace lestash::detail
