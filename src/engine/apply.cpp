// Apply: fetched rows into the replica (see apply.hpp).
#include "apply.hpp"

#include <algorithm>

#include "lestash_sync/replica/dead_letters.hpp"
#include "lestash_sync/replica/outbox.hpp"

namespace lestash::detail {
using nlohmann::json;
using sqlite::quote_identifier;

RowsToApply apply_order(const std::vector<TableMapping>& maps,
                        const std::map<std::string, std::vector<FetchedRow>>& rows) {
    RowsToApply out;
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

RowApplier::RowApplier(sqlite::Connection& db, IdentityMap& ids,
                       const std::vector<TableMapping>& maps)
    : db_(db),
      sql_(db),
      ids_(ids),
      maps_(maps),
      deferred_(db),
      unresolved_(db),
      pending_(Outbox(db).pending_rows()),
      had_deferred_(deferred_.any()),
      had_unresolved_(unresolved_.any()) {}

// Upserts parents first, then deletes children first (see apply_order).
PullStats RowApplier::apply(const RowsToApply& rows) {
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

void RowApplier::remove_all_except(const TableMapping& m, const std::set<std::string>& upstream) {
    if (!m.spec->keyed_by_rowid()) {
        for (const auto& [uuid, key] : link_index(m))
            if (!upstream.count(uuid))
                remove(m, uuid);
        return;
    }
    for (const auto& uuid : ids_.uuids_of(m.spec->name))
        if (!upstream.count(uuid))
            remove(m, uuid);
}

bool RowApplier::never_upstream(const TableMapping& m, const std::string& uuid, bool acknowledged) {
    if (acknowledged)
        return false;
    auto [it, fresh] = refused_inserts_.try_emplace(m.spec->name);
    if (fresh)
        it->second = DeadLetters(db_).refused_inserts(m.spec->name);
    return it->second.count(uuid) > 0;
}

bool RowApplier::is_pending(const TableMapping& m, const std::string& key) const {
    return pending_.count({m.spec->name, key}) > 0;
}

void RowApplier::defer(const TableMapping& m, const std::string& uuid) {
    deferred_.add(m.spec->name, uuid);
    had_deferred_ = true;
    ++stats_.deferred;
}

void RowApplier::undefer(const TableMapping& m, const std::string& uuid) {
    if (!had_deferred_)
        return;
    deferred_.remove(m.spec->name, uuid);
}

std::vector<sqlite::Value> RowApplier::decode(
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

std::optional<std::int64_t> RowApplier::find_by_natural_key(
    const TableMapping& m, const std::vector<sqlite::Value>& values) {
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

void RowApplier::upsert(const TableMapping& m, const FetchedRow& row) {
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

void RowApplier::upsert_link(const TableMapping& m, const FetchedRow& row,
                             const std::vector<sqlite::Value>& values) {
    std::vector<sqlite::Value> key;
    json key_text = json::array();
    for (const auto& k : m.spec->local_key) {
        key.push_back(values[static_cast<size_t>(m.find(k) - m.columns.data())]);
        key_text.push_back(std::get<std::int64_t>(key.back()));
    }
    if (is_pending(m, key_text.dump())) {
        defer(m, row.uuid);
        return;
    }
    if (m.columns.size() == key.size()) {
        // Nothing but its key (item_tags): there already, or inserted.
        auto& st = sql_.get("INSERT OR IGNORE INTO " + quote_identifier(m.spec->name) + " (" +
                            column_list(m) + ") VALUES (" + placeholders(m) + ")");
        for (size_t i = 0; i < values.size(); ++i) st.bind(static_cast<int>(i + 1), values[i]);
        st.run();
    } else if (const auto current = detail::read_local_row(sql_, m, key); !current) {
        insert_row(m, values);
    } else if (*current != values) {
        // Its other columns (a collection item's note) are updated like
        // any row's.
        update_link_row(m, key, values);
    }
    ids_.set_link_rev(m.spec->name, row.uuid, row.rev);
    undefer(m, row.uuid);
    ++stats_.applied;
}

void RowApplier::update_link_row(const TableMapping& m, const std::vector<sqlite::Value>& key,
                                 const std::vector<sqlite::Value>& values) {
    const auto& k = m.spec->local_key;
    std::string sets, where;
    std::vector<const sqlite::Value*> bound;
    for (size_t i = 0; i < m.columns.size(); ++i) {
        if (std::find(k.begin(), k.end(), m.columns[i].name) != k.end())
            continue;
        sets += (sets.empty() ? "" : ", ") + quote_identifier(m.columns[i].name) + " = ?";
        bound.push_back(&values[i]);
    }
    for (size_t i = 0; i < k.size(); ++i) {
        where += (where.empty() ? "" : " AND ") + quote_identifier(k[i]) + " = ?";
        bound.push_back(&key[i]);
    }
    auto& st =
        sql_.get("UPDATE " + quote_identifier(m.spec->name) + " SET " + sets + " WHERE " + where);
    for (size_t i = 0; i < bound.size(); ++i) st.bind(static_cast<int>(i + 1), *bound[i]);
    st.run();
}

std::string RowApplier::column_list(const TableMapping& m) {
    std::string cols;
    for (const auto& c : m.columns) cols += (cols.empty() ? "" : ", ") + quote_identifier(c.name);
    return cols;
}

std::string RowApplier::placeholders(const TableMapping& m) {
    std::string marks;
    for (size_t i = 0; i < m.columns.size(); ++i) marks += i ? ", ?" : "?";
    return marks;
}

std::int64_t RowApplier::insert_row(const TableMapping& m,
                                    const std::vector<sqlite::Value>& values) {
    auto& st = sql_.get("INSERT INTO " + quote_identifier(m.spec->name) + " (" + column_list(m) +
                        ") VALUES (" + placeholders(m) + ")");
    for (size_t i = 0; i < values.size(); ++i) st.bind(static_cast<int>(i + 1), values[i]);
    st.run();
    return db_.last_insert_rowid();
}

void RowApplier::update_row(const TableMapping& m, std::int64_t local_id,
                            const std::vector<sqlite::Value>& values) {
    std::string sets;
    for (const auto& c : m.columns)
        sets += (sets.empty() ? "" : ", ") + quote_identifier(c.name) + " = ?";
    auto& st = sql_.get("UPDATE " + quote_identifier(m.spec->name) + " SET " + sets + " WHERE " +
                        quote_identifier(m.spec->local_key[0]) + " = ?");
    for (size_t i = 0; i < values.size(); ++i) st.bind(static_cast<int>(i + 1), values[i]);
    st.bind(static_cast<int>(values.size() + 1), local_id);
    st.run();
}

void RowApplier::note_unresolved(
    const TableMapping& m, std::int64_t local_id,
    const std::vector<std::pair<std::string, std::string>>& unresolved) {
    unresolved_.replace(m.spec->name, local_id, unresolved);
    had_unresolved_ = had_unresolved_ || !unresolved.empty();
}

void RowApplier::resolve_pending_references() {
    if (!had_unresolved_)
        return;
    for (const auto& ref : unresolved_.all()) {
        const auto m = std::find_if(maps_.begin(), maps_.end(),
                                    [&](const auto& x) { return x.spec->name == ref.table; });
        if (m == maps_.end())
            continue;
        const ForeignKey* fk = m->spec->foreign_key(ref.column);
        const auto parent = fk ? ids_.by_uuid(fk->parent_table, ref.parent_uuid) : std::nullopt;
        if (!parent)
            continue;  // not here yet
        sql_.get("UPDATE " + quote_identifier(ref.table) + " SET " + quote_identifier(ref.column) +
                 " = ? WHERE " + quote_identifier(m->spec->local_key[0]) + " = ?")
            .bind(1, parent->local_id)
            .bind(2, ref.local_id)
            .run();
        unresolved_.resolved(ref.table, ref.local_id, ref.column);
    }
}

void RowApplier::remove(const TableMapping& m, const std::string& uuid) {
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
    if (never_upstream(m, uuid, known->server_rev.has_value())) {
        undefer(m, uuid);  // its insert was refused: absent upstream, not deleted there
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

void RowApplier::remove_link(const TableMapping& m, const std::string& uuid) {
    auto& index = link_index(m);
    const auto it = index.find(uuid);
    if (it == index.end()) {
        ids_.forget_link(uuid);
        return;
    }
    json key = json::array();
    for (const auto& v : it->second) key.push_back(std::get<std::int64_t>(v));
    if (is_pending(m, key.dump())) {
        defer(m, uuid);
        return;
    }
    if (never_upstream(m, uuid, ids_.link_rev(uuid).has_value())) {
        undefer(m, uuid);
        return;
    }
    std::string where;
    for (const auto& k : m.spec->local_key)
        where += (where.empty() ? "" : " AND ") + quote_identifier(k) + " = ?";
    auto& st = sql_.get("DELETE FROM " + quote_identifier(m.spec->name) + " WHERE " + where);
    for (size_t i = 0; i < it->second.size(); ++i) st.bind(static_cast<int>(i + 1), it->second[i]);
    st.run();
    ids_.forget_link(uuid);
    undefer(m, uuid);
    ++stats_.deleted;
}

std::map<std::string, std::vector<sqlite::Value>>& RowApplier::link_index(const TableMapping& m) {
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
            const auto p = ids_.by_local_id(m.spec->foreign_keys[i].parent_table, st.integer(col));
            if (p)
                parents.push_back(p->uuid);
        }
        if (parents.size() == key.size())
            it->second[link_row_uuid(*m.spec, parents)] = key;
    }
    return it->second;
}

}  // namespace lestash::detail
