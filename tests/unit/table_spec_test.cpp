#include <algorithm>
#include <catch2/catch.hpp>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/replica/capture.hpp"
#include "lestash_sync/replica/table_spec.hpp"

using namespace lestash;

TEST_CASE("the default tables are every user table of Le Stash, parents first", "[spec]") {
    std::vector<std::string> names;
    for (const auto& t : default_table_specs()) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"items", "tags", "sources", "item_history", "item_tags",
                                            "sync_log", "person_profiles", "collections",
                                            "collection_items", "item_media", "syndications"});
    CHECK(default_table_names() == names);
    // Every reference points at a table listed before it (or at itself).
    for (size_t i = 0; i < default_table_specs().size(); ++i)
        for (const auto& fk : default_table_specs()[i].foreign_keys) {
            INFO(default_table_specs()[i].name << "." << fk.column);
            const auto parent = std::find(names.begin(), names.end(), fk.parent_table);
            REQUIRE(parent != names.end());
            CHECK(static_cast<size_t>(parent - names.begin()) <= i);
        }
}

TEST_CASE("selecting tables keeps parents first and refuses what cannot be synced", "[spec]") {
    const auto picked = select_tables({"item_history", "items"});
    REQUIRE(picked.size() == 2);
    CHECK(picked[0].name == "items");
    CHECK_THROWS_WITH(select_tables({"items", "log_entries"}), Catch::Contains("never synced"));
    CHECK_THROWS_WITH(select_tables({"items", "post_cache"}),
                      Catch::Contains("\"post_cache\" is never synced (it is a cache"));
    CHECK_THROWS_WITH(select_tables({"vec_items"}), Catch::Contains("the vector index"));
    CHECK_THROWS_WITH(select_tables({"items", "collection"}),
                      Catch::Contains("unknown table \"collection\" in [sync] tables; expected "
                                      "some of: items, tags, sources, item_history, item_tags, "
                                      "sync_log, person_profiles, collections, collection_items, "
                                      "item_media, syndications"));
    CHECK_THROWS_WITH(select_tables({"collection_items", "items"}),
                      Catch::Contains("cannot be synced without \"collections\""));
    CHECK(stays_on_device("log_entries"));
    CHECK(stays_on_device("vec_items_chunks"));
    CHECK_FALSE(stays_on_device("collections"));
    CHECK_THROWS_WITH(select_tables({"item_tags", "items"}),
                      Catch::Contains("cannot be synced without \"tags\""));
    CHECK_THROWS_AS(select_tables({"nope"}), ConfigError);
}

TEST_CASE("capture triggers skip the engine's own writes and quote identifiers", "[capture]") {
    TableSpec spec{"we\"ird", IdentityRule::random, {"id"}, {}, {}};
    const auto sql = capture_trigger_sql(spec, {"a b", "c"});
    REQUIRE(sql.size() == 4);
    for (const auto& s : sql) {
        CHECK_THAT(s, Catch::Contains("NOT EXISTS (SELECT 1 FROM _lestash_sync_applying)"));
        CHECK_THAT(s, Catch::Contains("ON \"we\"\"ird\""));
    }
    CHECK_THAT(sql[1], Catch::Contains("OLD.\"a b\" IS NOT NEW.\"a b\""));
    CHECK_THAT(sql[1], Catch::Contains("'a b,'"));
}
