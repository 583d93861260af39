// Read-only queries for the control API (see include/lestash_sync/control/queries.hpp).
#include "lestash_sync/control/queries.hpp"

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/common/value_text.hpp"
#include "lestash_sync/control/rpc.hpp"
#include "lestash_sync/replica/identity.hpp"

namespace lestash::queries {

namespace {

json value_json(const sqlite::Statement& st, int i) {
    const auto v = st.value(i);
    if (std::holds_alternative<std::monostate>(v))
        return nullptr;
    if (const auto* n = std::get_if<std::int64_t>(&v))
        return *n;
    if (const auto* d = std::get_if<double>(&v))
        return *d;
    if (const auto* t = std::get_if<std::string>(&v))
        return *t;
    // A BLOB where the app keeps text: shown as hex, marked as such.
    return json{{"blob_hex", to_hex(std::get<sqlite::Blob>(v).bytes)}};
}

// Every column of the current row, by name.
json row_json(const sqlite::Statement& st) {
    json row = json::object();
    for (int i = 0; i < st.column_count(); ++i) row[st.column_name(i)] = value_json(st, i);
    return row;
}

// The item's UUID, or "" when it has none yet (never pushed).
std::string item_uuid(IdentityMap& ids, std::int64_t id) {
    const auto known = ids.by_local_id("items", id);
    return known ? known->uuid : "";
}

std::string sqlite_message(const std::exception& e, const std::string& path) {
    const std::string what = e.what();
    const auto at = what.find(path + ": ");
    return at == std::string::npos ? what : what.substr(at + path.size() + 2);
}

}  // namespace

std::optional<std::int64_t> resolve_item(sqlite::Connection& db, const std::string& id_or_uuid) {
    if (is_uuid(id_or_uuid)) {
        const auto known = IdentityMap(db).by_uuid("items", id_or_uuid);
        if (!known)
            return std::nullopt;
        return known->local_id;
    }
    std::size_t used = 0;
    std::int64_t id = 0;
    try {
        id = std::stoll(id_or_uuid, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != id_or_uuid.size())
        throw rpc::Failure(
            rpc::invalid_params,
            "\"id\" must be an item's number or its UUID, not \"" + id_or_uuid + "\"");
    sqlite::Statement st(db, "SELECT id FROM items WHERE id = ?");
    st.bind(1, id);
    if (!st.step())
        return std::nullopt;
    return id;
}

json search(sqlite::Connection& db, const SearchOptions& o) {
    // snippet() over column -1 picks the best-matching of title, content, author.
    std::string sql =
        "SELECT i.id, i.source_type, i.source_id, i.title, i.url, i.author, i.created_at, "
        "snippet(items_fts, -1, ?1, ?2, '…', ?3) AS snippet, bm25(items_fts) AS rank "
        "FROM items_fts JOIN items i ON i.id = items_fts.rowid WHERE items_fts MATCH ?4";
    if (o.source_type)
        sql += " AND i.source_type = ?7";
    sql += " ORDER BY rank, i.id LIMIT ?5 OFFSET ?6";
    json hits = json::array();
    std::int64_t total = 0;
    try {
        sqlite::Statement st(db, sql);
        st.bind_all(o.mark_start, o.mark_end, std::int64_t{o.snippet_tokens}, o.query,
                    std::int64_t{o.limit}, std::int64_t{o.offset});
        if (o.source_type)
            st.bind(7, *o.source_type);
        IdentityMap ids(db);
        while (st.step()) {
            json hit = row_json(st);
            hit["uuid"] = item_uuid(ids, st.integer(0));
            hits.push_back(std::move(hit));
        }
        sqlite::Statement count(db, std::string("SELECT count(*) FROM items_fts JOIN items i ON "
                                                "i.id = items_fts.rowid WHERE items_fts MATCH ?1") +
                                        (o.source_type ? " AND i.source_type = ?2" : ""));
        count.bind(1, o.query);
        if (o.source_type)
            count.bind(2, *o.source_type);
        if (count.step())
            total = count.integer(0);
    } catch (const LocalDatabaseError& e) {
        const std::string why = sqlite_message(e, db.path());
        throw rpc::Failure(rpc::bad_query,
                           "invalid search query \"" + o.query + "\": " + why +
                               " — quote words with special characters (\"like-this\"); syntax: "
                               "https://sqlite.org/fts5.html#full_text_query_syntax",
                           json{{"query", o.query}, {"sqlite", why}});
    }
    return {{"query", o.query}, {"total", total}, {"offset", o.offset}, {"hits", std::move(hits)}};
}

json get_item(sqlite::Connection& db, const std::string& id_or_uuid) {
    const auto id = resolve_item(db, id_or_uuid);
    if (!id)
        throw rpc::Failure(rpc::not_found, "no item " + id_or_uuid + " in this replica");
    sqlite::Statement st(db, "SELECT * FROM items WHERE id = ?");
    st.bind(1, *id);
    st.step();
    json item = row_json(st);
    IdentityMap ids(db);
    item["uuid"] = item_uuid(ids, *id);
    json tags = json::array();
    sqlite::Statement t(db,
                        "SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE "
                        "it.item_id = ? ORDER BY t.name");
    t.bind(1, *id);
    while (t.step()) tags.push_back(t.text(0));
    item["tags"] = std::move(tags);
    sqlite::Statement h(db, "SELECT count(*) FROM item_history WHERE item_id = ?");
    h.bind(1, *id);
    h.step();
    item["history_count"] = h.integer(0);
    return item;
}

json item_history(sqlite::Connection& db, const std::string& id_or_uuid, int limit) {
    const auto id = resolve_item(db, id_or_uuid);
    if (!id)
        throw rpc::Failure(rpc::not_found, "no item " + id_or_uuid + " in this replica");
    sqlite::Statement st(
        db,
        "SELECT * FROM item_history WHERE item_id = ? ORDER BY changed_at DESC, id DESC LIMIT ?");
    st.bind_all(*id, std::int64_t{limit});
    json rows = json::array();
    while (st.step()) rows.push_back(row_json(st));
    return {{"item_id", *id}, {"history", std::move(rows)}};
}

}  // namespace lestash::queries
