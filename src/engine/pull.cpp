// Pull: read the change log below the oldest running transaction, fetch the
// current state of the changed rows, and apply it in one short SQLite
// transaction per batch (FK-safe order, UUIDs translated to local ids, rows
// with unpushed local edits held back, the app's history trigger undone).
#include <spdlog/spdlog.h>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine_internal.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/engine/sync_engine.hpp"

namespace lestash {
using nlohmann::json;
using sqlite::quote_identifier;

namespace {

struct FetchedRow {
    std::string uuid;
    bool exists = false;
    std::vector<std::optional<std::string>> values;  // libpq text per mapped column
    std::int64_t rev = 0;
    json overrides;  // _sqlite, or null
};

std::string fetch_sql(const TableMapping& m, const std::string& where) {
    std::string sql = "SELECT \"id\"::text";
    for (const auto& c : m.columns) sql += ", " + quote_identifier(c.name);
    return sql + ", \"_rev\", \"_sqlite\"::text FROM lestash." + quote_identifier(m.spec->name) +
           " " + where;
}

FetchedRow row_from(const pqxx::row& r, const TableMapping& m) {
    FetchedRow f;
    f.uuid = r[0].as<std::string>();
    f.exists = true;
    for (size_t i = 0; i < m.columns.size(); ++i) {
        const auto& field = r[static_cast<int>(i + 1)];
        f.values.push_back(field.is_null() ? std::nullopt
                                           : std::optional<std::string>(field.c_str()));
    }
    f.rev = r[static_cast<int>(m.columns.size() + 1)].as<std::int64_t>();
    const auto& o = r[static_cast<int>(m.columns.size() + 2)];
    f.overrides = o.is_null() ? json(nullptr) : json::parse(o.c_str());
    return f;
}

std::pair<std::string, std::int64_t> parse_cursor(const std::string& text) {
    const auto colon = text.find(':');
    return {text.substr(0, colon), std::stoll(text.substr(colon + 1))};
}

}  // namespace

struct SyncEngine::FetchedRows {
    std::map<std::string, std::vector<FetchedRow>> by_table;
    bool empty() const { return by_table.empty(); }
};

SyncEngine::FetchedRows SyncEngine::fetch_rows(
    pqxx::transaction_base& tx, const std::vector<std::pair<std::string, std::string>>& keys) {
    FetchedRows out;
    std::map<std::string, std::vector<std::string>> wanted;
    for (const auto& [table, uuid] : keys) wanted[table].push_back(uuid);
    for (const auto& [table, uuids] : wanted) {
        const auto& m = mapping(table);
        auto& rows = out.by_table[table];
        std::set<std::string> found;
        for (const auto& r : tx.exec_params(fetch_sql(m, "WHERE \"id\" = ANY($1::uuid[])"),
                                            detail::uuid_array_literal(uuids))) {
            rows.push_back(row_from(r, m));
            found.insert(rows.back().uuid);
        }
        for (const auto& u : uuids)
            if (!found.count(u))
                rows.push_back(FetchedRow{u, false, {}, 0, nullptr});  // gone upstream: deleted
    }
    return out;
}

namespace {

// Applies fetched rows inside one ApplyScope.
class RowApplier {
  public:
    RowApplier(sqlite::Connection& db, IdentityMap& ids, const std::vector<TableMapping>& maps)
        : db_(db), sql_(db), ids_(ids), maps_(maps) {
        sqlite::Statement st(db_,
                             "SELECT tbl, coalesce(local_id, row_key) FROM _lestash_sync_outbox");
        while (st.step()) pending_.insert({st.text(0), st.text(1)});
        had_deferred_ = db_.query_int("SELECT count(*) FROM _lestash_sync_deferred") > 0;
        had_unresolved_ = db_.query_int("SELECT count(*) FROM _lestash_sync_unresolved") > 0;
    }

    // Applies rows in the order given (see apply_order): upserts parents
    // first, then deletes children first.
    PullStats apply(const std::vector<std::pair<const TableMapping*, const FetchedRow*>>& rows) {
        std::optional<std::int64_t> history_mark;
        auto end_items_run = [&] {
            if (!history_mark)
                return;
            resolve_pending_references();
            // The app's capture_item_history trigger fired for our updates;
            // the originating replica's history row arrives through sync.
            sql_.get("DELETE FROM item_history WHERE id > ?").bind(1, *history_mark).run();
            history_mark.reset();
        };
        for (const auto& [m, row] : rows) {
            const bool items_upsert = row->exists && m->spec->name == "items";
            if (!items_upsert)
                end_items_run();
            if (items_upsert && !history_mark)
                history_mark = db_.query_int("SELECT coalesce(max(id), 0) FROM item_history");
            if (row->exists)
                upsert(*m, *row);
            else
                remove(*m, row->uuid);
        }
        end_items_run();
        resolve_pending_references();
        return stats_;
    }

    // Deletes local rows that have an identity but are no longer upstream
    // (after a full resync); rows with pending local edits stay.
    void remove_all_except(const TableMapping& m, const std::set<std::string>& upstream) {
        if (!m.spec->keyed_by_rowid()) {
            for (const auto& [uuid, key] : link_index(m))
                if (!upstream.count(uuid))
                    remove(m, uuid);
            return;
        }
        std::vector<std::string> gone;
        sqlite::Statement st(db_, "SELECT uuid FROM _lestash_sync_ids WHERE tbl = ?");
        st.bind(1, m.spec->name);
        while (st.step()) {
            const auto uuid = uuid_from_bytes(std::get<sqlite::Blob>(st.value(0)).bytes);
            if (!upstream.count(uuid))
                gone.push_back(uuid);
        }
        for (const auto& uuid : gone) remove(m, uuid);
    }

  private:
    static sqlite::Value blob(const std::string& uuid) { return sqlite::Blob{uuid_to_bytes(uuid)}; }

    bool is_pending(const TableMapping& m, const std::string& key) const {
        return pending_.count({m.spec->name, key}) > 0;
    }

    void defer(const TableMapping& m, const std::string& uuid) {
        sql_.get("INSERT OR IGNORE INTO _lestash_sync_deferred (tbl, uuid) VALUES (?, ?)")
            .bind(1, m.spec->name)
            .bind(2, blob(uuid))
            .run();
        had_deferred_ = true;
        ++stats_.deferred;
    }

    void undefer(const TableMapping& m, const std::string& uuid) {
        if (!had_deferred_)
            return;
        sql_.get("DELETE FROM _lestash_sync_deferred WHERE tbl = ? AND uuid = ?")
            .bind(1, m.spec->name)
            .bind(2, blob(uuid))
            .run();
    }

    // Decodes the fetched values; references become local ids (or NULL with
    // a note to fill them in when the row they point to arrives).
    std::vector<sqlite::Value> decode(
        const TableMapping& m, const FetchedRow& row,
        std::vector<std::pair<std::string, std::string>>& unresolved) {
        std::vector<sqlite::Value> out;
        out.reserve(m.columns.size());
        for (size_t i = 0; i < m.columns.size(); ++i) {
            const auto& col = m.columns[i];
            if (col.fk) {
                if (!row.values[i]) {
                    out.emplace_back(std::monostate{});
                } else if (auto parent = ids_.by_uuid(col.fk->parent_table, *row.values[i])) {
                    out.emplace_back(parent->local_id);
                } else {
                    out.emplace_back(std::monostate{});
                    unresolved.emplace_back(col.name, *row.values[i]);
                }
                continue;
            }
            const json* o = row.overrides.is_object() && row.overrides.contains(col.name)
                                ? &row.overrides[col.name]
                                : nullptr;
            out.push_back(decode_value(row.values[i], col.type, o));
        }
        return out;
    }

    std::optional<std::int64_t> find_by_natural_key(const TableMapping& m,
                                                    const std::vector<sqlite::Value>& values) {
        if (m.natural_key.empty())
            return std::nullopt;
        std::string sql = "SELECT " + quote_identifier(m.spec->local_key[0]) + " FROM " +
                          quote_identifier(m.spec->name) + " WHERE ";
        for (size_t k = 0; k < m.natural_key.size(); ++k) {
            if (values[m.natural_key[k]].index() == 0)
                return std::nullopt;  // NULL never matches
            sql += (k ? " AND " : "") + quote_identifier(m.columns[m.natural_key[k]].name) + " = ?";
        }
        auto& st = sql_.get(sql);
        for (size_t k = 0; k < m.natural_key.size(); ++k)
            st.bind(static_cast<int>(k + 1), values[m.natural_key[k]]);
        std::optional<std::int64_t> out;
        if (st.step())
            out = st.integer(0);
        st.reset();
        return out;
    }

    void upsert(const TableMapping& m, const FetchedRow& row) {
        std::vector<std::pair<std::string, std::string>> unresolved;
        const auto values = decode(m, row, unresolved);
        for (const auto& [col, parent] : unresolved)
            if (m.find(col)->fk->required) {
                // Its parent is not here yet (held back by local edits, or
                // deleted here with the delete not pushed): wait for it.
                defer(m, row.uuid);
                return;
            }
        if (!m.spec->keyed_by_rowid()) {
            upsert_link(m, row, values);
            return;
        }
        auto known = ids_.by_uuid(m.spec->name, row.uuid);
        std::optional<std::int64_t> local = known ? std::optional(known->local_id) : std::nullopt;
        if (!local)
            local = find_by_natural_key(m, values);  // the same post, imported here too
        if (local && is_pending(m, std::to_string(*local))) {
            defer(m, row.uuid);  // local edits go first; fetched again after they are pushed
            return;
        }
        const auto current =
            local ? detail::read_local_row(sql_, m, {sqlite::Value{*local}}) : std::nullopt;
        if (current) {
            if (*current != values)
                update_row(m, *local, values);
        } else {
            local = insert_row(m, values);
        }
        if (!known || known->local_id != *local || known->server_rev != row.rev)
            ids_.set(m.spec->name, *local, row.uuid, row.rev);
        if (had_unresolved_ || !unresolved.empty())
            note_unresolved(m, *local, unresolved);
        undefer(m, row.uuid);
        ++stats_.applied;
    }

    void upsert_link(const TableMapping& m, const FetchedRow& row,
                     const std::vector<sqlite::Value>& values) {
        json key = json::array();
        for (const auto& k : m.spec->local_key)
            key.push_back(
                std::get<std::int64_t>(values[static_cast<size_t>(m.find(k) - m.columns.data())]));
        if (is_pending(m, key.dump())) {
            defer(m, row.uuid);
            return;
        }
        auto& st = sql_.get("INSERT OR IGNORE INTO " + quote_identifier(m.spec->name) + " (" +
                            column_list(m) + ") VALUES (" + placeholders(m) + ")");
        for (size_t i = 0; i < values.size(); ++i) st.bind(static_cast<int>(i + 1), values[i]);
        st.run();
        undefer(m, row.uuid);
        ++stats_.applied;
    }

    static std::string column_list(const TableMapping& m) {
        std::string cols;
        for (const auto& c : m.columns)
            cols += (cols.empty() ? "" : ", ") + quote_identifier(c.name);
        return cols;
    }

    static std::string placeholders(const TableMapping& m) {
        std::string marks;
        for (size_t i = 0; i < m.columns.size(); ++i) marks += i ? ", ?" : "?";
        return marks;
    }

    std::int64_t insert_row(const TableMapping& m, const std::vector<sqlite::Value>& values) {
        auto& st = sql_.get("INSERT INTO " + quote_identifier(m.spec->name) + " (" +
                            column_list(m) + ") VALUES (" + placeholders(m) + ")");
        for (size_t i = 0; i < values.size(); ++i) st.bind(static_cast<int>(i + 1), values[i]);
        st.run();
        return db_.last_insert_rowid();
    }

    void update_row(const TableMapping& m, std::int64_t local_id,
                    const std::vector<sqlite::Value>& values) {
        std::string sets;
        for (const auto& c : m.columns)
            sets += (sets.empty() ? "" : ", ") + quote_identifier(c.name) + " = ?";
        auto& st = sql_.get("UPDATE " + quote_identifier(m.spec->name) + " SET " + sets +
                            " WHERE " + quote_identifier(m.spec->local_key[0]) + " = ?");
        for (size_t i = 0; i < values.size(); ++i) st.bind(static_cast<int>(i + 1), values[i]);
        st.bind(static_cast<int>(values.size() + 1), local_id);
        st.run();
    }

    void note_unresolved(const TableMapping& m, std::int64_t local_id,
                         const std::vector<std::pair<std::string, std::string>>& unresolved) {
        sql_.get("DELETE FROM _lestash_sync_unresolved WHERE tbl = ? AND local_id = ?")
            .bind(1, m.spec->name)
            .bind(2, local_id)
            .run();
        for (const auto& [col, uuid] : unresolved)
            sql_.get(
                    "INSERT OR REPLACE INTO _lestash_sync_unresolved (tbl, local_id, col, "
                    "parent_uuid) VALUES (?, ?, ?, ?)")
                .bind(1, m.spec->name)
                .bind(2, local_id)
                .bind(3, col)
                .bind(4, blob(uuid))
                .run();
        had_unresolved_ = had_unresolved_ || !unresolved.empty();
    }

    // References that arrived before the row they point to, now resolvable.
    void resolve_pending_references() {
        if (!had_unresolved_)
            return;
        sqlite::Statement st(db_,
                             "SELECT u.tbl, u.local_id, u.col, i.local_id FROM "
                             "_lestash_sync_unresolved u JOIN _lestash_sync_ids i ON i.uuid = "
                             "u.parent_uuid");
        std::vector<std::tuple<std::string, std::int64_t, std::string, std::int64_t>> found;
        while (st.step()) found.emplace_back(st.text(0), st.integer(1), st.text(2), st.integer(3));
        for (const auto& entry : found) {
            const auto& [table, id, col, parent] = entry;
            const std::string& name = std::get<0>(entry);
            const auto m = std::find_if(maps_.begin(), maps_.end(),
                                        [&](const auto& x) { return x.spec->name == name; });
            if (m == maps_.end())
                continue;
            sql_.get("UPDATE " + quote_identifier(table) + " SET " + quote_identifier(col) +
                     " = ? WHERE " + quote_identifier(m->spec->local_key[0]) + " = ?")
                .bind(1, parent)
                .bind(2, id)
                .run();
            sql_.get(
                    "DELETE FROM _lestash_sync_unresolved WHERE tbl = ? AND local_id = ? AND col = "
                    "?")
                .bind(1, table)
                .bind(2, id)
                .bind(3, col)
                .run();
        }
    }

    void remove(const TableMapping& m, const std::string& uuid) {
        if (!m.spec->keyed_by_rowid()) {
            remove_link(m, uuid);
            return;
        }
        const auto known = ids_.by_uuid(m.spec->name, uuid);
        if (!known)
            return;
        if (is_pending(m, std::to_string(known->local_id))) {
            defer(m, uuid);
            return;
        }
        sql_.get("DELETE FROM " + quote_identifier(m.spec->name) + " WHERE " +
                 quote_identifier(m.spec->local_key[0]) + " = ?")
            .bind(1, known->local_id)
            .run();
        ids_.forget(uuid);
        undefer(m, uuid);
        ++stats_.deleted;
    }

    // A link row's UUID derives from its parents'; find which local row has it.
    void remove_link(const TableMapping& m, const std::string& uuid) {
        auto& index = link_index(m);
        const auto it = index.find(uuid);
        if (it == index.end())
            return;
        json key = json::array();
        for (const auto& v : it->second) key.push_back(std::get<std::int64_t>(v));
        if (is_pending(m, key.dump())) {
            defer(m, uuid);
            return;
        }
        std::string where;
        for (const auto& k : m.spec->local_key)
            where += (where.empty() ? "" : " AND ") + quote_identifier(k) + " = ?";
        auto& st = sql_.get("DELETE FROM " + quote_identifier(m.spec->name) + " WHERE " + where);
        for (size_t i = 0; i < it->second.size(); ++i)
            st.bind(static_cast<int>(i + 1), it->second[i]);
        st.run();
        undefer(m, uuid);
        ++stats_.deleted;
    }

    std::map<std::string, std::vector<sqlite::Value>>& link_index(const TableMapping& m) {
        auto [it, fresh] = link_indexes_.try_emplace(m.spec->name);
        if (!fresh)
            return it->second;
        std::string cols;
        for (const auto& k : m.spec->local_key)
            cols += (cols.empty() ? "" : ", ") + quote_identifier(k);
        sqlite::Statement st(db_, "SELECT " + cols + " FROM " + quote_identifier(m.spec->name));
        while (st.step()) {
            std::vector<sqlite::Value> key;
            std::vector<std::string> parents;
            for (size_t i = 0; i < m.spec->local_key.size(); ++i) {
                const int col = static_cast<int>(i);
                key.push_back(st.value(col));
                const auto p =
                    ids_.by_local_id(m.spec->foreign_keys[i].parent_table, st.integer(col));
                if (p)
                    parents.push_back(p->uuid);
            }
            if (parents.size() == key.size())
                it->second[link_row_uuid(*m.spec, parents)] = key;
        }
        return it->second;
    }

    sqlite::Connection& db_;
    detail::StatementCache sql_;
    IdentityMap& ids_;
    const std::vector<TableMapping>& maps_;
    std::set<std::pair<std::string, std::string>> pending_;
    bool had_deferred_ = false;
    bool had_unresolved_ = false;
    std::map<std::string, std::map<std::string, std::vector<sqlite::Value>>> link_indexes_;
    PullStats stats_;
};

}  // namespace

namespace {

// Upserts with parents first, then deletes with children first.
std::vector<std::pair<const TableMapping*, const FetchedRow*>> apply_order(
    const std::vector<TableMapping>& maps,
    const std::map<std::string, std::vector<FetchedRow>>& rows) {
    std::vector<std::pair<const TableMapping*, const FetchedRow*>> out;
    for (const bool upserts : {true, false}) {
        for (size_t i = 0; i < maps.size(); ++i) {
            const auto& m = upserts ? maps[i] : maps[maps.size() - 1 - i];
            const auto it = rows.find(m.spec->name);
            if (it == rows.end())
                continue;
            for (const auto& row : it->second)
                if (row.exists == upserts)
                    out.emplace_back(&m, &row);
        }
    }
    return out;
}

}  // namespace

PullStats SyncEngine::apply_rows(const FetchedRows& rows, const std::string* cursor) {
    // As many transactions as it takes to hold the lock about
    // WritePacer::kTargetHold each, whatever the machine's speed; the row
    // count per transaction adapts. The cursor is saved with the last one.
    const auto order = apply_order(mappings_, rows.by_table);
    PullStats stats;
    size_t done = 0;
    do {
        const size_t n = std::min(order.size() - done, apply_chunk_rows_);
        pacer_.before_write();
        fault("pull:apply");
        const auto t0 = std::chrono::steady_clock::now();
        {
            ApplyScope scope(replica_.db());
            RowApplier applier(replica_.db(), ids_, mappings_);
            stats += applier.apply({order.begin() + static_cast<std::ptrdiff_t>(done),
                                    order.begin() + static_cast<std::ptrdiff_t>(done + n)});
            done += n;
            if (done == order.size()) {
                fault("pull:before-cursor-save");
                if (cursor)
                    replica_.set_meta("pull_cursor", *cursor);
            }
            scope.commit();
            if (done == order.size() && cursor)
                fault("pull:cursor-saved");
        }
        const auto held = std::chrono::steady_clock::now() - t0;
        pacer_.after_write(held);
        if (n > 0 && held > std::chrono::milliseconds(1))
            apply_chunk_rows_ = std::clamp<size_t>(n * WritePacer::kTargetHold / held, 50, 20000);
    } while (done < order.size());
    return stats;
}

PullStats SyncEngine::bootstrap(bool resync) {
    // Every table in pages of pull_batch rows from one snapshot, each page
    // applied in its own short transaction; then the change log is followed
    // from the snapshot's horizon. Entries between the horizon and the
    // snapshot are read again later, which is harmless: pulls apply state.
    PullStats stats;
    std::string horizon;
    std::map<std::string, std::set<std::string>> seen;
    try {
        pqxx::transaction<pqxx::repeatable_read, pqxx::readwrite_policy::read_only> tx(
            upstream_.connection());
        horizon =
            tx.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0].as<std::string>();
        for (const auto& m : mappings_) {
            // In the order rows were created, so local ids keep that order.
            tx.exec("DECLARE lestash_bootstrap NO SCROLL CURSOR FOR " +
                    fetch_sql(m, "ORDER BY \"_created\""));
            const std::string fetch =
                "FETCH " + std::to_string(2 * options_.pull_batch) + " FROM lestash_bootstrap";
            for (;;) {
                const auto page = tx.exec(fetch);
                if (page.empty())
                    break;
                FetchedRows fetched;
                auto& rows = fetched.by_table[m.spec->name];
                for (const auto& r : page) {
                    rows.push_back(row_from(r, m));
                    if (resync)
                        seen[m.spec->name].insert(rows.back().uuid);
                }
                stats += apply_rows(fetched, nullptr);
                stats.changes += static_cast<std::int64_t>(page.size());
            }
            tx.exec("CLOSE lestash_bootstrap");
        }
        tx.commit();
    } catch (...) {
        rethrow_as_upstream_error("copying the upstream tables from " + upstream_.target());
    }
    fault("pull:after-fetch");
    pacer_.before_write();
    ApplyScope scope(replica_.db());
    if (resync) {
        // Offline past the change log's retention: whatever is gone upstream
        // was deleted there.
        RowApplier applier(replica_.db(), ids_, mappings_);
        for (auto m = mappings_.rbegin(); m != mappings_.rend(); ++m)
            applier.remove_all_except(*m, seen[m->spec->name]);
    }
    fault("pull:before-cursor-save");
    replica_.set_meta("pull_cursor", horizon + ":0");
    scope.commit();
    pacer_.after_write(std::chrono::milliseconds(1));
    return stats;
}

PullStats SyncEngine::pull_batch() {
    if (replica_.follow_schema_changes())
        refresh_mappings();
    const auto cursor_text = replica_.meta("pull_cursor");
    fault("pull:fetch");
    if (!cursor_text)
        return bootstrap(false);
    const auto [xid, id] = parse_cursor(*cursor_text);
    FetchedRows fetched;
    std::string next_cursor;
    std::int64_t changes = 0;
    try {
        pqxx::transaction<pqxx::repeatable_read, pqxx::readwrite_policy::read_only> tx(
            upstream_.connection());
        const bool compacted_past_us =
            tx.exec_params(
                  "SELECT count(*) > 0 FROM lestash.change_log_horizon WHERE (xid, id) > "
                  "($1::xid8, $2::bigint)",
                  xid, id)[0][0]
                .as<bool>();
        if (compacted_past_us) {
            tx.commit();
            return bootstrap(true);
        }
        // ORDER BY a bare name picks an output column first: ordered by
        // "xid" the text column, "1000" sorted before "999" and a batch cut
        // at its limit moved the cursor past changes it never read. The
        // qualified names order by the xid8 column itself.
        const auto log = tx.exec_params(
            "SELECT id, xid::text AS xid_text, tbl, row_id::text, origin::text "
            "FROM lestash.change_log WHERE (xid, id) > ($1::xid8, $2::bigint) AND xid < "
            "pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY change_log.xid, change_log.id LIMIT $3",
            xid, id, options_.pull_batch);
        if (log.empty()) {
            tx.commit();
            return {};
        }
        std::vector<std::pair<std::string, std::string>> keys;
        std::set<std::pair<std::string, std::string>> seen;
        for (const auto& r : log) {
            const std::string table = r[2].as<std::string>();
            // Our own pushes are already here.
            if (!r[4].is_null() && r[4].as<std::string>() == replica_.replica_id())
                continue;
            if (std::none_of(mappings_.begin(), mappings_.end(),
                             [&](const auto& m) { return m.spec->name == table; }))
                continue;
            if (seen.insert({table, r[3].as<std::string>()}).second)
                keys.emplace_back(table, r[3].as<std::string>());
        }
        const auto& last = log[log.size() - 1];
        next_cursor = last[1].as<std::string>() + ":" + last[0].as<std::string>();
        changes = static_cast<std::int64_t>(log.size());
        fetched = fetch_rows(tx, keys);
        tx.commit();
        spdlog::debug("pull: change log after {} up to {}: {} entries, {} rows fetched",
                      *cursor_text, next_cursor, changes, keys.size());
    } catch (...) {
        rethrow_as_upstream_error("pulling changes from " + upstream_.target());
    }
    fault("pull:after-fetch");
    PullStats stats = apply_rows(fetched, &next_cursor);
    stats.changes = changes;
    return stats;
}

PullStats SyncEngine::apply_deferred() {
    std::vector<std::pair<std::string, std::string>> keys;
    {
        sqlite::Statement st(replica_.db(), "SELECT tbl, uuid FROM _lestash_sync_deferred");
        while (st.step())
            keys.emplace_back(st.text(0),
                              uuid_from_bytes(std::get<sqlite::Blob>(st.value(1)).bytes));
    }
    return refetch(keys);
}

PullStats SyncEngine::refetch(const std::vector<std::pair<std::string, std::string>>& keys) {
    if (keys.empty())
        return {};
    FetchedRows fetched;
    try {
        pqxx::read_transaction tx(upstream_.connection());
        fetched = fetch_rows(tx, keys);
        tx.commit();
    } catch (...) {
        rethrow_as_upstream_error("fetching " + std::to_string(keys.size()) + " rows from " +
                                  upstream_.target());
    }
    return apply_rows(fetched, nullptr);
}

}  // namespace lestash
