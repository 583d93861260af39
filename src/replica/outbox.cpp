// Every statement on _lestash_sync_outbox (see outbox.hpp).
#include "lestash_sync/replica/outbox.hpp"

#include "lestash_sync/common/uuid.hpp"

namespace lestash {

using sqlite::quote_identifier;
using sqlite::quote_literal;

std::vector<OutboxEntry> Outbox::read(std::int64_t after_seq, int limit) {
    sqlite::Statement st(db_,
                         "SELECT seq, tbl, op, local_id, row_key, row_uuid, link_uuids, changed, "
                         "captured_at FROM _lestash_sync_outbox WHERE seq > ? ORDER BY seq "
                         "LIMIT ?");
    st.bind(1, after_seq).bind(2, static_cast<std::int64_t>(limit));
    std::vector<OutboxEntry> out;
    while (st.step()) {
        OutboxEntry e;
        e.seq = st.integer(0);
        e.table = st.text(1);
        e.op = st.text(2).at(0);
        if (!st.is_null(3))
            e.local_id = st.integer(3);
        e.row_key = st.text(4);
        if (!st.is_null(5))
            e.row_uuid = uuid_from_bytes(std::get<sqlite::Blob>(st.value(5)).bytes);
        e.link_uuids = st.text(6);
        std::string changed = st.text(7);
        for (size_t pos = 0; !changed.empty();) {
            const size_t comma = changed.find(',', pos);
            e.changed.push_back(changed.substr(pos, comma - pos));
            if (comma == std::string::npos)
                break;
            pos = comma + 1;
        }
        e.captured_at = st.text(8);
        out.push_back(std::move(e));
    }
    return out;
}

std::int64_t Outbox::depth() {
    return db_.query_int("SELECT count(*) FROM _lestash_sync_outbox");
}

bool Outbox::empty() {
    return db_.query_int("SELECT EXISTS (SELECT 1 FROM _lestash_sync_outbox)") == 0;
}

double Outbox::lag_seconds() {
    if (empty())
        return 0.0;
    return static_cast<double>(
               db_.query_int("SELECT CAST((julianday('now') - julianday(min(captured_at))) "
                             "* 86400000 AS INTEGER) FROM _lestash_sync_outbox")) /
           1000.0;
}

void Outbox::drop_through(std::int64_t seq) {
    sqlite::Statement drop(db_, "DELETE FROM _lestash_sync_outbox WHERE seq <= ?");
    drop.bind(1, seq).run();
}

std::set<std::pair<std::string, std::string>> Outbox::pending_rows() {
    std::set<std::pair<std::string, std::string>> out;
    sqlite::Statement st(db_, "SELECT tbl, coalesce(local_id, row_key) FROM _lestash_sync_outbox");
    while (st.step()) out.insert({st.text(0), st.text(1)});
    return out;
}

std::set<std::pair<std::string, std::int64_t>> Outbox::pending_local_ids() {
    std::set<std::pair<std::string, std::int64_t>> out;
    sqlite::Statement st(
        db_, "SELECT tbl, local_id FROM _lestash_sync_outbox WHERE local_id IS NOT NULL");
    while (st.step()) out.insert({st.text(0), st.integer(1)});
    return out;
}

void Outbox::enqueue_rows(const TableSpec& spec, char op, const std::string& changed,
                          const std::string& where) {
    const std::string tbl = quote_literal(spec.name);
    const std::string condition = where.empty() ? "" : " WHERE " + where;
    if (spec.keyed_by_rowid()) {
        db_.exec("INSERT INTO _lestash_sync_outbox (tbl, op, local_id, changed) SELECT " + tbl +
                 ", '" + op + "', " + quote_identifier(spec.local_key[0]) + ", " + changed +
                 " FROM " + quote_identifier(spec.name) + condition + " ORDER BY 3");
        return;
    }
    std::string key = "json_array(";
    for (size_t i = 0; i < spec.local_key.size(); ++i)
        key += std::string(i ? ", " : "") + quote_identifier(spec.local_key[i]);
    db_.exec("INSERT INTO _lestash_sync_outbox (tbl, op, row_key, changed) SELECT " + tbl + ", '" +
             op + "', " + key + "), " + changed + " FROM " + quote_identifier(spec.name) +
             condition + " ORDER BY rowid");
}

void Outbox::enqueue_row(const TableSpec& spec, char op, const std::vector<sqlite::Value>& key,
                         const std::vector<std::string>& changed) {
    std::string columns;
    for (const auto& c : changed) columns += (columns.empty() ? "" : ",") + c;
    const sqlite::Value changed_value =
        columns.empty() ? sqlite::Value{} : sqlite::Value{std::move(columns)};
    if (spec.keyed_by_rowid()) {
        sqlite::Statement st(
            db_,
            "INSERT INTO _lestash_sync_outbox (tbl, op, local_id, changed) VALUES (?, ?, ?, ?)");
        st.bind(1, spec.name).bind(2, std::string(1, op)).bind(3, key.at(0)).bind(4, changed_value);
        st.run();
        return;
    }
    std::string row_key = "[";
    for (size_t i = 0; i < key.size(); ++i)
        row_key += (i ? "," : "") + std::to_string(std::get<std::int64_t>(key[i]));
    sqlite::Statement st(
        db_, "INSERT INTO _lestash_sync_outbox (tbl, op, row_key, changed) VALUES (?, ?, ?, ?)");
    st.bind(1, spec.name).bind(2, std::string(1, op)).bind(3, row_key + "]").bind(4, changed_value);
    st.run();
}

std::string Outbox::capture_sql(const TableSpec& spec, char op, const std::string& key,
                                const std::string& detail) {
    const bool rowid = spec.keyed_by_rowid();
    const char* key_column = rowid ? "local_id" : "row_key";
    const char* detail_column = op != 'D' ? "changed" : rowid ? "row_uuid" : "link_uuids";
    return std::string("INSERT INTO _lestash_sync_outbox (tbl, op, ") + key_column + ", " +
           detail_column + ") VALUES (" + quote_literal(spec.name) + ", '" + op + "', " + key +
           ", " + detail + ");";
}

}  // namespace lestash
