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
    };
    return specs;
}

namespace {

// Synced only when [sync] tables names them. item_media is here until
// issue 15 part A makes it one of the defaults (with its phone config);
// media files follow its rows (src/media/).
const std::vector<TableSpec>& opt_in_table_specs() {
    static const std::vector<TableSpec> specs = {
        {"item_media", IdentityRule::random, {"id"}, {}, {{"item_id", "items", true}}},
    };
    return specs;
}

// The defaults, then the opt-in tables: parents before children.
std::vector<TableSpec> known_table_specs() {
    std::vector<TableSpec> out = default_table_specs();
    out.insert(out.end(), opt_in_table_specs().begin(), opt_in_table_specs().end());
    return out;
}

}  // namespace

std::vector<TableSpec> select_tables(const std::vector<std::string>& names) {
    const auto all = known_table_specs();
    for (const auto& name : names) {
        if (name == "log_entries")
            throw ConfigError(
                "table \"log_entries\" is never synced (it is the app's local log); remove it "
                "from [sync] tables");
        if (std::none_of(all.begin(), all.end(), [&](const auto& s) { return s.name == name; }))
            throw ConfigError("unknown table \"" + name +
                              "\" in [sync] tables; expected some of: items, item_history, tags, "
                              "item_tags, sources, sync_log, item_media");
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
