#include <catch2/catch.hpp>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/replica/capture.hpp"
#include "lestash_sync/replica/table_spec.hpp"

using namespace lestash;

TEST_CASE(
    "the default tables, parents first: items, tags, sources, item_history, item_tags, sync_log",
    "[spec]") {
    std::vector<std::string> names;
    for (const auto& t : default_table_specs()) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"items", "tags", "sources", "item_history", "item_tags",
                                            "sync_log"});
}

TEST_CASE("selecting tables keeps parents first and refuses what cannot be synced", "[spec]") {
    const auto picked = select_tables({"item_history", "items"});
    REQUIRE(picked.size() == 2);
    CHECK(picked[0].name == "items");
    CHECK_THROWS_WITH(select_tables({"items", "log_entries"}), Catch::Contains("never synced"));
    CHECK_THROWS_WITH(select_tables({"items", "collections"}), Catch::Contains("unknown table"));
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
