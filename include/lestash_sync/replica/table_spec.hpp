// The declarative description of what is synced: which tables, how each row
// gets its global identity, and which columns point at other synced rows.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lestash {

enum class IdentityRule {
    // A fresh random UUID the first time the row is pushed.
    random,
    // Name-based UUID from the natural key columns; when any of them is NULL
    // (an items row without source_id) the row falls back to a random UUID.
    // A key column that is a reference (syndications.item_id) is named by
    // the UUID of the row it points to, never by its local id.
    natural_key,
    // The row is identified by the rows it links (item_tags,
    // collection_items): name-based UUID from the parents' UUIDs. Such
    // tables have no INTEGER PRIMARY KEY; their other columns (a
    // collection item's note) are updated like any row's.
    link,
};

struct ForeignKey {
    std::string column;
    std::string parent_table;
    // A required reference (NOT NULL / part of a link's key): a row whose
    // parent is not here yet waits for it rather than arriving without it.
    bool required = false;
};

struct TableSpec {
    std::string name;
    IdentityRule identity = IdentityRule::random;
    // Local key: {"id"} for tables with an INTEGER PRIMARY KEY, or the link
    // columns for link tables.
    std::vector<std::string> local_key;
    std::vector<std::string> natural_key;
    std::vector<ForeignKey> foreign_keys;

    bool keyed_by_rowid() const { return identity != IdentityRule::link; }
    const ForeignKey* foreign_key(std::string_view column) const;
};

// Every table of Le Stash that holds the user's data — items, tags, sources,
// item_history, item_tags, sync_log, person_profiles, collections,
// collection_items, item_media, syndications — in an order where every
// parent comes before its children (the order rows are applied in).
const std::vector<TableSpec>& default_table_specs();
// Their names, in that order: the default of [sync] tables.
std::vector<std::string> default_table_names();

// True for the app's tables that are never synced: log_entries (its local
// log), post_cache (a fetch cache), the vector index vec_items and its
// shadow tables (derived data).
bool stays_on_device(const std::string& table);

// Picks the named tables out of the defaults, keeping parent-first order.
// Raises ConfigError for unknown names, for the tables that stay on the
// device (saying why), and for a selection that syncs a child without its
// parent.
std::vector<TableSpec> select_tables(const std::vector<std::string>& names);

}  // namespace lestash
