// lestash-id-vectors: the test vectors of config/powersync/id-vectors.json,
// computed by the engine's own identity rules (new_row_uuid, link_row_uuid),
// so that a phone (or any other writer) that makes ids for natural-key rows
// can check it makes the same ones (docs/mobile.md, "Ids").
//
//   lestash-id-vectors                 prints the JSON
//   lestash-id-vectors --check FILE    exits 1 when FILE differs from it
//
// Each row vector also spells out the name that is hashed, built here from
// the rule as docs/mobile.md states it; the program fails if that name does
// not give the engine's UUID, so the documented rule is checked too. The
// integration test `the id test vectors hold in Postgres` checks the same
// file against lestash.name_based_uuid and the canonical_row_id trigger.
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/common/value_text.hpp"
#include "lestash_sync/replica/identity.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace {

using lestash::sqlite::Blob;
using lestash::sqlite::Value;
using Json = nlohmann::ordered_json;

constexpr char kSeparator = '\x1f';

// A natural-key value: its SQLite storage class and its value as text
// (integers in decimal, reals as the shortest exact decimal, blobs in hex).
std::pair<std::string, std::string> class_and_text(const Value& v) {
    switch (v.index()) {
        case 1:
            return {"integer", std::to_string(std::get<1>(v))};
        case 2:
            return {"real", lestash::exact_real_text(std::get<2>(v))};
        case 3:
            return {"text", std::get<3>(v)};
        case 4:
            return {"blob", lestash::to_hex(std::get<4>(v).bytes)};
        default:
            throw std::invalid_argument("a NULL key value gives a random id, not a vector");
    }
}

// The rule in docs/mobile.md: table, then per key column U+001F and
// "<class letter>:<value as text>".
std::string documented_name(const std::string& table, const std::vector<Value>& key) {
    std::string name = table;
    for (const auto& v : key) {
        const auto [cls, text] = class_and_text(v);
        name += kSeparator + std::string(1, cls[0]) + ":" + text;
    }
    return name;
}

const lestash::TableSpec& spec_of(const std::string& table) {
    for (const auto& spec : lestash::default_table_specs())
        if (spec.name == table)
            return spec;
    throw std::invalid_argument("no synced table " + table);
}

class Vectors {
  public:
    // A natural-key row; `label` names it for link rows below.
    void row(const std::string& label, const std::string& table, const std::vector<Value>& key) {
        const auto& spec = spec_of(table);
        const std::string uuid = lestash::new_row_uuid(spec, key);
        const std::string name = documented_name(table, key);
        agree(name, uuid);
        Json columns = Json::object();
        for (std::size_t i = 0; i < key.size(); ++i) {
            const auto [cls, text] = class_and_text(key[i]);
            columns[spec.natural_key.at(i)] = {cls, text};
        }
        rows_.push_back({{"table", table}, {"key", columns}, {"name", name}, {"uuid", uuid}});
        uuids_[label] = uuid;
    }

    // A link row (item_tags) from rows given before.
    void link(const std::string& table, const std::vector<std::string>& parent_labels) {
        const auto& spec = spec_of(table);
        std::vector<std::string> parents;
        std::string name = table;
        Json columns = Json::object();
        for (std::size_t i = 0; i < parent_labels.size(); ++i) {
            parents.push_back(uuids_.at(parent_labels[i]));
            name += kSeparator + parents.back();
            columns[spec.local_key.at(i)] = {"uuid", parents.back()};
        }
        const std::string uuid = lestash::link_row_uuid(spec, parents);
        agree(name, uuid);
        rows_.push_back({{"table", table}, {"key", columns}, {"name", name}, {"uuid", uuid}});
    }

    void name(const std::string& text) {
        names_.push_back(
            {{"name", text}, {"uuid", lestash::name_based_uuid(lestash::kRowNamespace, text)}});
    }

    Json json() const {
        return {{"about",
                 "Name-based row ids of lestash-sync (docs/mobile.md, \"Ids\"): UUID version 3 "
                 "(MD5) of namespace + UTF-8 name. Made by tests/powersync/id_vectors.cpp from "
                 "the daemon's own rules; checked against Postgres (lestash.name_based_uuid, "
                 "the canonical_row_id trigger) by the integration tests."},
                {"namespace", std::string(lestash::kRowNamespace)},
                {"separator", std::string(1, kSeparator)},
                {"names", names_},
                {"rows", rows_}};
    }

  private:
    static void agree(const std::string& name, const std::string& uuid) {
        if (lestash::name_based_uuid(lestash::kRowNamespace, name) != uuid)
            throw std::logic_error("the rule in docs/mobile.md and the engine disagree on " +
                                   Json(name).dump() + ": fix one of them");
    }

    Json names_ = Json::array(), rows_ = Json::array();
    std::map<std::string, std::string> uuids_;
};

Json make_vectors() {
    const auto text = [](const char* s) { return Value{std::string(s)}; };
    Vectors v;
    for (const char* name : {"", "a", "Le Stash", "日本語", "🦀"}) v.name(name);

    v.row("tag rust", "tags", {text("rust")});
    v.row("tag empty", "tags", {text("")});
    v.row("tag japanese", "tags", {text("日本語のタグ")});
    v.row("tag nfc", "tags", {text("caf\u00e9")});   // é as one code point
    v.row("tag nfd", "tags", {text("cafe\u0301")});  // e + combining acute: another id
    v.row("tag emoji", "tags", {text("reading 🦀")});
    v.row("tag controls", "tags", {text("tab\tand\nnewline")});
    v.row("tag quotes", "tags", {text("it's \"quoted\" \\ back")});
    v.row("tag integer", "tags", {Value{std::int64_t{42}}});
    v.row("tag negative", "tags", {Value{std::int64_t{-9223372036854775807 - 1}}});
    v.row("tag real", "tags", {Value{1.5}});
    v.row("tag real tenth", "tags", {Value{0.1}});
    v.row("tag blob", "tags", {Value{Blob{std::string("\x00\xff\x10", 3)}}});

    v.row("item note", "items", {text("note"), text("2024-01-01-a")});
    v.row("item bluesky", "items",
          {text("bluesky"), text("at://did:plc:abc123/app.bsky.feed.post/3kxyz")});
    v.row("item empty", "items", {text(""), text("")});
    v.row("item text one", "items", {text("note"), text("1")});
    v.row("item integer one", "items", {text("note"), Value{std::int64_t{1}}});
    v.row("item unicode", "items", {text("note"), text("Ünïcödé ✓ 🦀")});

    v.row("source bluesky", "sources", {text("bluesky")});
    v.row("source mastodon", "sources", {text("mastodon")});
    v.row("source empty", "sources", {text("")});

    v.link("item_tags", {"item note", "tag rust"});
    v.link("item_tags", {"item bluesky", "tag japanese"});
    v.link("item_tags", {"item unicode", "tag integer"});
    return v.json();
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string out = make_vectors().dump(2) + "\n";
        if (argc == 1) {
            std::cout << out;
            return 0;
        }
        if (argc == 3 && std::strcmp(argv[1], "--check") == 0) {
            std::ifstream in(argv[2], std::ios::binary);
            const std::string have{std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>()};
            if (have == out)
                return 0;
            std::cerr << argv[2]
                      << " is not what the engine's rules give; regenerate it: " << argv[0] << " > "
                      << argv[2] << "\n";
            return 1;
        }
        std::cerr << "usage: lestash-id-vectors [--check FILE]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "lestash-id-vectors: " << e.what() << "\n";
        return 1;
    }
}
