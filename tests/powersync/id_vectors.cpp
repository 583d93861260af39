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
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/common/value_text.hpp"
#include "lestash_sync/replica/identity.hpp"
#include "lestash_sync/replica/table_spec.hpp"
#include "lestash_sync/upstream/value_codec.hpp"

namespace {

using lestash::sqlite::Blob;
using lestash::sqlite::Value;
using Json = nlohmann::ordered_json;

constexpr char kSeparator = '\x1f';

// Text JSON and Postgres's text type can carry: valid UTF-8 without NUL.
bool plain_text(const std::string& s) {
    return s.find('\0') == std::string::npos && lestash::is_valid_utf8(s);
}

// A natural-key value: its SQLite storage class and its value as text
// (integers in decimal, reals as the shortest exact decimal, blobs in hex),
// or "text-hex" and the hex of the bytes for text that is not plain (as
// it travels in _sqlite, migrations/postgres/001).
std::pair<std::string, std::string> class_and_text(const Value& v) {
    switch (v.index()) {
        case 1:
            return {"integer", std::to_string(std::get<1>(v))};
        case 2:
            return {"real", lestash::exact_real_text(std::get<2>(v))};
        case 3:
            if (!plain_text(std::get<3>(v)))
                return {"text-hex", lestash::to_hex(std::get<3>(v))};
            return {"text", std::get<3>(v)};
        case 4:
            return {"blob", lestash::to_hex(std::get<4>(v).bytes)};
        default:
            throw std::invalid_argument("a NULL key value gives a random id, not a vector");
    }
}

// A key part as docs/mobile.md states the rule: "<class letter>:<value as
// text>" (text-hex is text: "t:" and its raw bytes), or for a reference
// the UUID of the row it points to.
std::string documented_part(const Value& v, bool reference) {
    if (reference)
        return std::get<std::string>(v);
    const auto [cls, text] = class_and_text(v);
    return cls == "text-hex" ? "t:" + lestash::from_hex(text) : std::string(1, cls[0]) + ":" + text;
}

const lestash::TableSpec& spec_of(const std::string& table) {
    for (const auto& spec : lestash::default_table_specs())
        if (spec.name == table)
            return spec;
    throw std::invalid_argument("no synced table " + table);
}

// A key value of a vector: a value of the row, or (by its label) the row a
// reference points to.
struct KeyValue {
    Value value;
    std::string parent_label;  // non-empty: a reference
};

class Vectors {
  public:
    // A natural-key row; `label` names it for the rows that point at it.
    void row(const std::string& label, const std::string& table, const std::vector<KeyValue>& key) {
        const auto& spec = spec_of(table);
        std::vector<std::optional<std::string>> parts;
        std::string name = table;
        Json columns = Json::object();
        for (std::size_t i = 0; i < key.size(); ++i) {
            const bool reference = !key[i].parent_label.empty();
            const Value v = reference ? Value{uuids_.at(key[i].parent_label)} : key[i].value;
            parts.push_back(reference ? std::get<std::string>(v) : *lestash::natural_key_part(v));
            name += kSeparator + documented_part(v, reference);
            columns[spec.natural_key.at(i)] =
                reference ? Json{"uuid", std::get<std::string>(v)} : Json(class_and_text(v));
        }
        add(table, columns, name, lestash::new_row_uuid(spec, parts));
        uuids_[label] = rows_.back()["uuid"];
    }

    // A link row (item_tags, collection_items) from rows given before.
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
        add(table, columns, name, lestash::link_row_uuid(spec, parents));
    }

    // A row with a random id that link vectors point at (a collection).
    void given(const std::string& label, const std::string& uuid) { uuids_[label] = uuid; }

    void name(const std::string& text) {
        names_.push_back(
            {{"name", text}, {"uuid", lestash::name_based_uuid(lestash::kRowNamespace, text)}});
    }

    Json json() const {
        return {{"about",
                 "Name-based row ids of lestash-sync (docs/mobile.md, \"Ids\"): UUID version 3 "
                 "(MD5) of namespace + the name's bytes (UTF-8; given as name_hex where the name "
                 "is not UTF-8 text without NUL). Made by tests/powersync/id_vectors.cpp from "
                 "the daemon's own rules; checked against Postgres (lestash.name_based_uuid, "
                 "lestash.natural_row_id, the canonical_row_id trigger) by the integration "
                 "tests."},
                {"namespace", std::string(lestash::kRowNamespace)},
                {"separator", std::string(1, kSeparator)},
                {"names", names_},
                {"rows", rows_}};
    }

  private:
    // A row vector; a name JSON cannot carry as text (NUL, invalid UTF-8)
    // is given as "name_hex", the hex of its bytes.
    void add(const std::string& table, const Json& key, const std::string& name,
             const std::string& uuid) {
        if (lestash::name_based_uuid(lestash::kRowNamespace, name) != uuid)
            throw std::logic_error("the rule in docs/mobile.md and the engine disagree on " +
                                   lestash::to_hex(name) + " (hex): fix one of them");
        Json row = {{"table", table}, {"key", key}};
        if (plain_text(name))
            row["name"] = name;
        else
            row["name_hex"] = lestash::to_hex(name);
        row["uuid"] = uuid;
        rows_.push_back(std::move(row));
    }

    Json names_ = Json::array(), rows_ = Json::array();
    std::map<std::string, std::string> uuids_;
};

Json make_vectors() {
    const auto text = [](const std::string& s) { return KeyValue{Value{s}, ""}; };
    const auto value = [](Value v) { return KeyValue{std::move(v), ""}; };
    const auto points_at = [](const char* label) { return KeyValue{Value{}, label}; };
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
    v.row("tag integer", "tags", {value(std::int64_t{42})});
    v.row("tag negative", "tags", {value(std::int64_t{-9223372036854775807 - 1})});
    v.row("tag real", "tags", {value(1.5)});
    v.row("tag real tenth", "tags", {value(0.1)});
    v.row("tag blob", "tags", {value(Blob{std::string("\x00\xff\x10", 3)})});
    // Text Postgres cannot hold as text (it travels as text-hex): named from
    // its raw bytes, by the daemons and by lestash.natural_row_id alike.
    v.row("tag nul", "tags", {text(std::string("a\0b", 3))});
    v.row("tag invalid utf-8", "tags", {text("caf\xe9 \xff")});

    v.row("item note", "items", {text("note"), text("2024-01-01-a")});
    v.row("item bluesky", "items",
          {text("bluesky"), text("at://did:plc:abc123/app.bsky.feed.post/3kxyz")});
    v.row("item empty", "items", {text(""), text("")});
    v.row("item text one", "items", {text("note"), text("1")});
    v.row("item integer one", "items", {text("note"), value(std::int64_t{1})});
    v.row("item unicode", "items", {text("note"), text("Ünïcödé ✓ 🦀")});

    v.row("source bluesky", "sources", {text("bluesky")});
    v.row("source mastodon", "sources", {text("mastodon")});
    v.row("source empty", "sources", {text("")});

    v.row("source nul", "sources", {text(std::string("rss\0", 4))});

    v.row("profile", "person_profiles", {text("urn:li:person:ACoAAB1x2Y3")});
    v.row("profile unicode", "person_profiles", {text("urn:li:person:Zoë-日本")});
    v.row("profile empty", "person_profiles", {text("")});
    v.row("profile integer", "person_profiles", {value(std::int64_t{7})});

    // The item is named by its UUID, never by a device's local id.
    v.row(
        "syndication", "syndications",
        {points_at("item note"), text("bluesky"), text("https://bsky.app/profile/me/post/3kxyz")});
    v.row("syndication other target", "syndications",
          {points_at("item note"), text("mastodon"), text("https://mastodon.social/@me/1")});
    v.row("syndication unicode", "syndications",
          {points_at("item unicode"), text("blog ✍"), text("")});

    v.link("item_tags", {"item note", "tag rust"});
    v.link("item_tags", {"item bluesky", "tag japanese"});
    v.link("item_tags", {"item unicode", "tag integer"});
    // Collections have random ids; a link to one is named from that id.
    v.given("reading list", "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
    v.link("collection_items", {"reading list", "item note"});
    v.link("collection_items", {"reading list", "item unicode"});
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
