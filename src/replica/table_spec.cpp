// The default synced tables and their identity rules (see table_spec.hpp).
#include "lestash_sync/replica/table_spec.hpp"

#include <algorithm>

#include "lestash_sync/common/error.hpp"

namespace lestash {

const ForeignKey* TableSpec::foreign_key(std::string_view column) const {
    for (const auto& fk : foreign_keys)
        if (fk.column == column)
            return &fk;
    return nullptr;
}

const std::vector<TableSpec>& default_table_specs() {
    static const std::vector<TableSpec> specs = {
        {"items",
         IdentityRule::natural_key,
         {"id"},
         {"source_type", "source_id"},
         {{"parent_id", "items", false}}},
        {"tags", IdentityRule::natural_key, {"id"}, {"name"}, {}},
        {"sources", IdentityRule::natural_key, {"id"}, {"source_type"}, {}},
        {"item_history",
         IdentityRule::random,
         {"id"},
         {},
         {{"item_id", "items", true}, {"parent_id_old", "items", false}}},
        {"item_tags",
         IdentityRule::link,
         {"item_id", "tag_id"},
         {},
         {{"item_id", "items", true}, {"tag_id", "tags", true}}},
        {"sync_log", IdentityRule::random, {"id"}, {}, {}},
        {"person_profiles", IdentityRule::natural_key, {"id"}, {"urn"}, {}},
        {"collections", IdentityRule::random, {"id"}, {}, {}},
        {"collection_items",
         IdentityRule::link,
         {"collection_id", "item_id"},
         {},
         {{"collection_id", "collections", true}, {"item_id", "items", true}}},
        {"item_media", IdentityRule::random, {"id"}, {}, {{"item_id", "items", true}}},
        // The natural key holds a reference: it is named by the item's UUID.
        {"syndications",
         IdentityRule::natural_key,
         {"id"},
         {"item_id", "target", "target_url"},
         {{"item_id", "items", true}}},
    };
    return specs;
}

std::vector<std::string> default_table_names() {
    std::vector<std::string> out;
    for (const auto& spec : default_table_specs()) out.push_back(spec.name);
    return out;
}

namespace {

// The app's tables that stay on the device, and why (docs/architecture.md,
// "What stays on the device"); [sync] tables refuses them with this reason.
const char* stays_local(const std::string& name) {
    if (name == "log_entries")
        return "it is the app's local log";
    if (name == "post_cache")
        return "it is a cache of other people's posts, which Le Stash fetches again when it "
               "needs them";
    if (name == "vec_items" || name.rfind("vec_items_", 0) == 0)
        return "it is the vector index, derived from the items and rebuilt on each device";
    return nullptr;
}

std::string default_names() {
    std::string out;
    for (const auto& name : default_table_names()) out += (out.empty() ? "" : ", ") + name;
    return out;
}

}  // namespace

bool stays_on_device(const std::string& table) {
    return stays_local(table) != nullptr;
}

std::vector<TableSpec> select_tables(const std::vector<std::string>& names) {
    const auto& all = default_table_specs();
    for (const auto& name : names) {
        if (const char* why = stays_local(name))
            throw ConfigError("table \"" + name + "\" is never synced (" + why +
                              "); remove it from [sync] tables");
        if (std::none_of(all.begin(), all.end(), [&](const auto& s) { return s.name == name; }))
            throw ConfigError("unknown table \"" + name +
                              "\" in [sync] tables; expected some of: " + default_names());
    }
    std::vector<TableSpec> out;
    for (const auto& spec : all)
        if (std::find(names.begin(), names.end(), spec.name) != names.end())
            out.push_back(spec);
    for (const auto& spec : out)
        for (const auto& fk : spec.foreign_keys)
            if (fk.parent_table != spec.name &&
                std::none_of(out.begin(), out.end(),
                             [&](const auto& s) { return s.name == fk.parent_table; }))
                throw ConfigError("table \"" + spec.name + "\" cannot be synced without \"" +
                                  fk.parent_table + "\" (its column " + fk.column +
                                  " points there); add it to [sync] tables");
    return out;
}

}  // namespace lestash
