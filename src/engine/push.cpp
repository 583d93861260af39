// Push: the outbox, in order and in batches, to Postgres; one Postgres
// transaction per batch that also records (replica, last sequence), so a
// batch retried after a lost acknowledgement is recognised and skipped.
#include <algorithm>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/dead_letters.hpp"
#include "local_rows.hpp"

namespace lestash {
using nlohmann::json;
using sqlite::quote_identifier;

namespace {

// One row's change as it goes to Postgres: the current local state of the
// row (never a replay of old values), all columns for a row Postgres has not
// seen from us, else the changed columns only.
struct RowChange {
    const TableMapping* map = nullptr;
    std::string uuid;
    bool insert = false;
    std::vector<std::string> changed;  // update path: mapped columns that changed
    json record;                       // id, columns, _sqlite, _push_base
};

std::string pg_name(const TableMapping& m) {
    return "lestash." + quote_identifier(m.spec->name);
}

std::vector<std::string> all_columns(const TableMapping& m) {
    std::vector<std::string> out;
    for (const auto& c : m.columns) out.push_back(c.name);
    return out;
}

// Rows go to Postgres as plain statement parameters in a VALUES list, each
// cast to its column's type: Postgres reads every value with the type's own
// input function, and nothing is escaped on the way (a JSON document of the
// rows costs both sides more than the rows themselves: every content
// escaped, parsed, and copied into the plan).
class RowParams {
  public:
    RowParams(const TableMapping& m, const std::vector<std::string>& cols) : map_(m), cols_(cols) {}

    // As many rows as one statement may carry (libpq takes 65535 parameters).
    size_t rows_per_statement() const { return std::max<size_t>(1, 65535 / (cols_.size() + 3)); }

    // "x("id", "c", ..., "_sqlite", "_push_base")": the VALUES list's names.
    std::string names() const {
        std::string out = "\"id\"";
        for (const auto& c : cols_) out += ", " + quote_identifier(c);
        return out + ", \"_sqlite\", \"_push_base\"";
    }

    // "($1::uuid, $2::text, ...), (...)" for the rows, their values appended
    // to params_ (pointers into the records, which must outlive the statement).
    std::string values(const std::vector<const json*>& records) {
        std::string out;
        for (const json* r : records) {
            out += out.empty() ? "(" : ", (";
            add(r->at("id"), "uuid", out);
            for (const auto& c : cols_) add(r->at(c), pg_type_sql(map_.find(c)->type), out);
            add(r->at("_sqlite"), "jsonb", out);
            add(r->at("_push_base"), "bigint", out);
            out += ")";
        }
        return out;
    }

    std::vector<const char*>& params() { return params_; }

  private:
    void add(const json& v, const char* type, std::string& sql) {
        if (params_.size() % (cols_.size() + 3) != 0)
            sql += ", ";
        sql += "$" + std::to_string(params_.size() + 1) + "::" + type;
        if (v.is_null())
            params_.push_back(nullptr);
        else if (v.is_string())
            params_.push_back(v.get_ref<const std::string&>().c_str());
        else  // numbers, booleans, the override object: their JSON text is the input form
            params_.push_back(owned_.emplace_back(v.dump()).c_str());
    }

    const TableMapping& map_;
    const std::vector<std::string>& cols_;
    std::vector<const char*> params_;
    std::deque<std::string> owned_;
};

std::string insert_sql(const TableMapping& m, RowParams& rows,
                       const std::vector<const json*>& records) {
    std::string sets;
    for (const auto& c : m.columns)
        sets += quote_identifier(c.name) + " = excluded." + quote_identifier(c.name) + ", ";
    return "INSERT INTO " + pg_name(m) + " AS t (" + rows.names() + ") VALUES " +
           rows.values(records) + " ON CONFLICT (\"id\") DO UPDATE SET " + sets +
           "\"_sqlite\" = excluded.\"_sqlite\", \"_push_base\" = excluded.\"_push_base\" "
           "RETURNING t.\"id\"::text, t.\"_rev\"";
}

std::string update_sql(const TableMapping& m, const std::vector<std::string>& cols, RowParams& rows,
                       const std::vector<const json*>& records) {
    std::string sets, names;
    for (const auto& c : cols) {
        sets += quote_identifier(c) + " = x." + quote_identifier(c) + ", ";
        names += (names.empty() ? "" : ",") + c;
    }
    // Overrides of the columns sent are replaced; the others stay.
    return "UPDATE " + pg_name(m) + " AS t SET " + sets +
           "\"_sqlite\" = nullif((coalesce(t.\"_sqlite\", '{}') - '{" + names +
           "}'::text[]) || coalesce(x.\"_sqlite\", '{}'), '{}'), \"_push_base\" = x.\"_push_base\" "
           "FROM (VALUES " +
           rows.values(records) + ") AS x(" + rows.names() +
           ") WHERE t.\"id\" = x.\"id\" RETURNING t.\"id\"::text, t.\"_rev\"";
}

std::string key_of(const OutboxEntry& e) {
    return e.local_id ? std::to_string(*e.local_id) : e.row_key;
}

// "0011...ff" (32 hex digits, as the delete trigger records) to canonical form.
std::optional<std::string> uuid_from_hex(const json& v) {
    if (!v.is_string() || v.get<std::string>().size() != 32)
        return std::nullopt;
    const std::string h = v.get<std::string>();
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20);
}

}  // namespace

struct SyncEngine::PreparedPush {
    std::int64_t last_seq = 0;
    std::int64_t entries = 0;
    std::vector<RowChange> upserts;
    std::vector<std::pair<const TableMapping*, std::string>> deletes;
    std::vector<std::pair<std::string, std::int64_t>> revs;  // uuid -> new _rev
    std::vector<DeadLetter> dead;
    bool already_applied = false;
    bool more = false;  // the outbox held entries after this batch when it was read

    // Whether this batch, prepared while `sent` was in Postgres, is what
    // preparing it now would give. Finishing `sent` records the revisions
    // Postgres gave its rows (a row in both would go with a stale base, and
    // as an insert again) and forgets the identities of rows it deleted;
    // its dead letters were a refusal better retried alone. Any of those:
    // prepare it again.
    bool holds_after(const PreparedPush& sent) const {
        if (!sent.deletes.empty() || !sent.dead.empty())
            return false;
        std::set<std::string> touched;
        for (const auto& u : sent.upserts) touched.insert(u.uuid);
        return std::none_of(upserts.begin(), upserts.end(),
                            [&](const RowChange& u) { return touched.count(u.uuid) > 0; }) &&
               std::none_of(deletes.begin(), deletes.end(),
                            [&](const auto& d) { return touched.count(d.second) > 0; });
    }
};

namespace {

// Builds row changes while the SQLite read is consistent; resolves identities
// (assigning UUIDs the first time a row is pushed) along the way.
class PushBuilder {
  public:
    PushBuilder(sqlite::Connection& db, IdentityMap& ids, const std::vector<TableMapping>& maps,
                std::vector<RowChange>& out)
        : rows_(db), ids_(ids), maps_(maps), out_(out) {}
    detail::StatementCache& rows() { return rows_; }
    // Whether a row got a random identity: one a lost assignment could not
    // make again the same way (a name-based one, version 3, it would).
    bool assigned_random() const { return assigned_random_; }
    // Of the values of the rows read so far.
    size_t bytes() const { return bytes_; }

    const TableMapping& map(const std::string& table) const {
        for (const auto& m : maps_)
            if (m.spec->name == table)
                return m;
        throw SchemaError("table " + table + " is not synced");
    }

    // Adds the current state of a local row; returns its UUID, or nullopt
    // when the row no longer exists (a later delete in the outbox covers it).
    std::optional<std::string> add(const TableMapping& m, const std::vector<sqlite::Value>& key,
                                   bool insert, const std::set<std::string>& changed) {
        const std::string key_text = key_string(key);
        if (auto it = added_.find({m.spec->name, key_text}); it != added_.end())
            return it->second;
        const auto row = detail::read_local_row(rows_, m, key);
        if (!row)
            return std::nullopt;
        for (const auto& v : *row)
            bytes_ += v.index() == 3   ? std::get<3>(v).size()
                      : v.index() == 4 ? std::get<4>(v).bytes.size()
                                       : sizeof(std::int64_t);

        RowChange change;
        change.map = &m;
        std::optional<Mapping> known;
        if (m.spec->keyed_by_rowid()) {
            const std::int64_t local_id = std::get<std::int64_t>(key[0]);
            known = ids_.by_local_id(m.spec->name, local_id);
            change.uuid = known ? known->uuid : assign_uuid(m, local_id, *row);
        } else {
            std::vector<std::string> parents;
            for (size_t i = 0; i < m.spec->foreign_keys.size(); ++i) {
                auto p = parent_uuid(m.spec->foreign_keys[i], key[i]);
                if (!p)
                    return std::nullopt;  // a parent vanished: its delete cascades upstream
                parents.push_back(*p);
            }
            change.uuid = link_row_uuid(*m.spec, parents);
            if (const auto rev = ids_.link_rev(change.uuid))
                known = Mapping{0, change.uuid, rev};
        }
        added_[{m.spec->name, key_text}] = change.uuid;
        change.insert = insert || !known;

        change.record["id"] = change.uuid;
        json overrides = json::object();
        for (size_t i = 0; i < m.columns.size(); ++i) {
            const auto& col = m.columns[i];
            if (!change.insert && !changed.count(col.name))
                continue;
            if (!change.insert)
                change.changed.push_back(col.name);
            if (col.fk) {
                auto p = parent_uuid(*col.fk, (*row)[i]);
                change.record[col.name] = p ? json(*p) : json(nullptr);
                continue;
            }
            auto enc = encode_value((*row)[i], col.type);
            change.record[col.name] = std::move(enc.typed);
            if (enc.override_entry)
                overrides[col.name] = std::move(*enc.override_entry);
        }
        if (!change.insert && change.changed.empty())
            return change.uuid;  // nothing upstream has
        change.record["_sqlite"] = overrides.empty() ? json(nullptr) : overrides;
        // The revision this replica last saw; -1 for a row it never saw from
        // Postgres, so merging into someone else's row records every difference.
        change.record["_push_base"] = known && known->server_rev
                                          ? json(*known->server_rev)
                                          : (change.insert ? json(-1) : json(nullptr));
        out_.push_back(std::move(change));
        return out_.back().uuid;
    }

  private:
    static std::string key_string(const std::vector<sqlite::Value>& key) {
        std::string s;
        for (const auto& v : key)
            s += (v.index() == 1 ? std::to_string(std::get<1>(v)) : std::string("?")) + ",";
        return s;
    }

    // The parent's UUID; a parent never pushed yet joins this batch.
    std::optional<std::string> parent_uuid(const ForeignKey& fk, const sqlite::Value& v) {
        if (v.index() != 1)
            return std::nullopt;
        const std::int64_t id = std::get<1>(v);
        if (auto known = ids_.by_local_id(fk.parent_table, id))
            return known->uuid;
        return add(map(fk.parent_table), {v}, true, {});
    }

    std::string assign_uuid(const TableMapping& m, std::int64_t local_id,
                            const std::vector<sqlite::Value>& row) {
        // A key column that is a reference is named by its parent's UUID.
        std::vector<std::optional<std::string>> key_parts;
        for (size_t i : m.natural_key)
            key_parts.push_back(m.columns[i].fk ? parent_uuid(*m.columns[i].fk, row[i])
                                                : natural_key_part(row[i]));
        std::string uuid = new_row_uuid(*m.spec, key_parts);
        if (auto holder = ids_.by_uuid(m.spec->name, uuid);
            holder && holder->local_id != local_id) {
            // The natural key's UUID belongs to another local row. If that row
            // is gone (deleted, its delete not pushed yet) this row takes the
            // identity over; if it still exists the key was edited, and this
            // row gets a fresh identity.
            if (detail::read_local_row(rows_, m, {sqlite::Value{holder->local_id}}))
                uuid = random_uuid();
        }
        if (uuid[14] != '3')
            assigned_random_ = true;
        ids_.set(m.spec->name, local_id, uuid, std::nullopt);
        return uuid;
    }

    detail::StatementCache rows_;
    IdentityMap& ids_;
    const std::vector<TableMapping>& maps_;
    std::vector<RowChange>& out_;
    std::map<std::pair<std::string, std::string>, std::string> added_;
    bool assigned_random_ = false;
    size_t bytes_ = 0;
};

}  // namespace

namespace {

// The batch's entries per local row, in first-seen order: whether the row
// was inserted and the union of its changed columns. A delete drops what
// was queued for its row and is kept apart, in order.
struct CoalescedEntries {
    struct Row {
        const OutboxEntry* first;
        bool insert = false;
        std::set<std::string> changed;
    };
    std::vector<std::pair<std::string, std::string>> order;
    std::map<std::pair<std::string, std::string>, Row> rows;
    std::vector<const OutboxEntry*> deletes;
};

CoalescedEntries coalesce(const std::vector<OutboxEntry>& entries) {
    CoalescedEntries out;
    for (const auto& e : entries) {
        const auto key = std::make_pair(e.table, key_of(e));
        if (e.op == 'D') {
            out.rows.erase(key);  // whatever was queued for that row is gone with it
            out.deletes.push_back(&e);
            continue;
        }
        auto [it, fresh] = out.rows.try_emplace(key, CoalescedEntries::Row{&e, false, {}});
        if (fresh)
            out.order.push_back(key);
        if (e.op == 'I')
            it->second.insert = true;
        it->second.changed.insert(e.changed.begin(), e.changed.end());
    }
    return out;
}

// The first sequence number of the entries of the rows from `from` on in
// the coalesced order: what a batch that stops before them must leave queued.
// Not simply `from`'s: a row deleted and written again is ordered by its
// first entry but starts after the delete.
std::int64_t cut_before(const CoalescedEntries& c,
                        std::vector<std::pair<std::string, std::string>>::const_iterator from) {
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
    for (; from != c.order.end(); ++from)
        if (const auto it = c.rows.find(*from); it != c.rows.end())
            first = std::min(first, it->second.first->seq);
    return first;
}

// The identity a deleted row had upstream, if it ever got one.
std::optional<std::string> deleted_row_uuid(const OutboxEntry& e, const TableMapping& m,
                                            detail::StatementCache& rows, IdentityMap& ids) {
    if (!m.spec->keyed_by_rowid()) {
        const auto parents = json::parse(e.link_uuids.empty() ? "[]" : e.link_uuids);
        std::vector<std::string> p;
        for (const auto& v : parents)
            if (auto u = uuid_from_hex(v))
                p.push_back(*u);
        if (p.size() == m.spec->foreign_keys.size())
            return link_row_uuid(*m.spec, p);
        return e.row_uuid;
    }
    if (e.row_uuid || detail::read_local_row(rows, m, {sqlite::Value{*e.local_id}}))
        return e.row_uuid;
    // Deleted before its first push had recorded a UUID; if that push has
    // happened since, the mapping tells which row Postgres holds.
    if (auto known = ids.by_local_id(e.table, *e.local_id))
        return known->uuid;
    return std::nullopt;
}

// Whether a local row holds a deleted row's identity now: one that took it
// over (its natural key moved to it, see PushBuilder::assign_uuid) or the
// same key written again. Postgres's row under it is that row's, pushed in
// this batch or a later one: deleting it would lose it for good when a batch
// boundary falls between the delete and that row (the check on the batch's
// own upserts alone saw only the same batch).
bool identity_in_use(const OutboxEntry& e, const TableMapping& m, const std::string& uuid,
                     detail::StatementCache& rows, IdentityMap& ids) {
    if (m.spec->keyed_by_rowid()) {
        const auto holder = ids.by_uuid(m.spec->name, uuid);
        return holder && detail::read_local_row(rows, m, {sqlite::Value{holder->local_id}});
    }
    const auto key = detail::link_key_values(e.row_key);
    if (!detail::read_local_row(rows, m, key))
        return false;
    std::vector<std::string> parents;
    for (size_t i = 0; i < m.spec->foreign_keys.size() && i < key.size(); ++i) {
        const auto parent = key[i].index() == 1
                                ? ids.by_local_id(m.spec->foreign_keys[i].parent_table,
                                                  std::get<std::int64_t>(key[i]))
                                : std::nullopt;
        if (!parent)
            return false;
        parents.push_back(parent->uuid);
    }
    return parents.size() == m.spec->foreign_keys.size() && link_row_uuid(*m.spec, parents) == uuid;
}

using Written = std::vector<std::pair<std::string, std::int64_t>>;  // uuid, its new _rev

// Writes a prepared batch's rows in the caller's transaction. In isolation
// mode each row goes alone in a savepoint, and a row Postgres refuses for
// good becomes a dead letter instead of failing the batch.
class BatchWriter {
  public:
    BatchWriter(pqxx::work& tx, bool isolate_rows, const std::string& replica_id, Written& revs,
                std::vector<DeadLetter>& dead)
        : tx_(tx), isolate_rows_(isolate_rows), replica_id_(replica_id), revs_(revs), dead_(dead) {}

    // The table's inserts, then its updates grouped by the columns they change.
    void upserts(const TableMapping& m, const std::vector<RowChange>& all) {
        std::vector<const RowChange*> inserts;
        std::map<std::vector<std::string>, std::vector<const RowChange*>> updates;
        for (const auto& u : all) {
            if (u.map != &m)
                continue;
            if (u.insert)
                inserts.push_back(&u);
            else
                updates[u.changed].push_back(&u);
        }
        if (!inserts.empty()) {
            const auto w = write(m, all_columns(m), inserts, "insert");
            revs_.insert(revs_.end(), w.begin(), w.end());
        }
        for (const auto& [cols, rows] : updates) {
            const auto w = write(m, cols, rows, "update");
            revs_.insert(revs_.end(), w.begin(), w.end());
            keep_lost_edits(m, rows, w);
        }
    }

    void deletes(const TableMapping& m,
                 const std::vector<std::pair<const TableMapping*, std::string>>& all) {
        std::vector<std::string> uuids;
        for (const auto& [map, uuid] : all)
            if (map == &m)
                uuids.push_back(uuid);
        if (!uuids.empty())
            tx_.exec_params("DELETE FROM " + pg_name(m) + " WHERE \"id\" = ANY($1::uuid[])",
                            detail::uuid_array_literal(uuids));
    }

  private:
    // Inserts (op "insert": all columns) or updates `cols` of the rows, as
    // few statements as the parameter limit allows; what they wrote.
    Written write(const TableMapping& m, const std::vector<std::string>& cols,
                  const std::vector<const RowChange*>& rows, const char* op) {
        Written written;
        auto run = [&](const std::vector<const json*>& records) {
            RowParams params(m, cols);
            const std::string sql = std::string(op) == "insert"
                                        ? insert_sql(m, params, records)
                                        : update_sql(m, cols, params, records);
            collect(tx_.exec_params(sql, pqxx::prepare::make_dynamic_params(params.params())),
                    written);
        };
        if (!isolate_rows_) {
            const size_t step = RowParams(m, cols).rows_per_statement();
            for (size_t i = 0; i < rows.size(); i += step) {
                std::vector<const json*> records;
                for (size_t j = i; j < std::min(rows.size(), i + step); ++j)
                    records.push_back(&rows[j]->record);
                run(records);
            }
            return written;
        }
        for (const auto* row : rows) {
            tx_.exec("SAVEPOINT lestash_row");
            try {
                run({&row->record});
                tx_.exec("RELEASE SAVEPOINT lestash_row");
            } catch (const pqxx::sql_error& e) {
                if (is_transient_sqlstate(e.sqlstate()))
                    throw;
                tx_.exec("ROLLBACK TO SAVEPOINT lestash_row");
                dead_.push_back({row->map->spec->name, row->uuid, op, row->record.dump(), e.what(),
                                 e.sqlstate()});
            }
        }
        return written;
    }

    static void collect(const pqxx::result& r, Written& out) {
        for (const auto& row : r)
            out.emplace_back(row[0].as<std::string>(), row[1].as<std::int64_t>());
    }

    // Rows an update found no longer in Postgres were deleted elsewhere: the
    // delete wins, and the edit is kept as a conflict the owner can see.
    void keep_lost_edits(const TableMapping& m, const std::vector<const RowChange*>& rows,
                         const Written& written) {
        std::set<std::string> hit;
        for (const auto& [uuid, rev] : written) hit.insert(uuid);
        for (const auto& d : dead_) hit.insert(d.uuid);
        for (const auto* r : rows) {
            if (hit.count(r->uuid))
                continue;
            json lost = r->record;
            lost.erase("id");
            lost.erase("_push_base");
            tx_.exec_params(
                "INSERT INTO lestash.conflicts (tbl, row_id, column_name, winner_value, "
                "winner_origin, loser_value, loser_origin) VALUES ($1, $2::uuid, '*', "
                "'\"(deleted)\"'::jsonb, NULL, $3::jsonb, $4::uuid)",
                m.spec->name, r->uuid, lost.dump(), replica_id_);
        }
    }

    pqxx::work& tx_;
    const bool isolate_rows_;
    const std::string& replica_id_;
    Written& revs_;
    std::vector<DeadLetter>& dead_;
};

}  // namespace

SyncEngine::PreparedPush SyncEngine::prepare_push(const std::vector<OutboxEntry>& entries) {
    PreparedPush batch;
    batch.last_seq = entries.back().seq;
    const auto coalesced = coalesce(entries);

    pacer_.before_write();
    const auto t0 = std::chrono::steady_clock::now();
    // Not waiting for the disk: a lost name-based identity is assigned again
    // the same way from the same rows (see assigned_random below).
    sqlite::DiskDeferredTransaction txn(replica_.db());
    PushBuilder builder(replica_.db(), ids_, mappings_, batch.upserts);
    const std::int64_t first_delete =
        coalesced.deletes.empty() ? batch.last_seq + 1 : coalesced.deletes.front()->seq;
    bool whole = false;
    for (auto key = coalesced.order.begin(); key != coalesced.order.end(); ++key) {
        const auto it = coalesced.rows.find(*key);
        if (it == coalesced.rows.end())
            continue;
        if (!whole && builder.bytes() > 0 && builder.bytes() >= options_.batch_bytes) {
            // Enough for one batch: it ends before the first entry of the
            // rows left (their entries stay queued; the state of rows read
            // already is current, entries of them after that are pushed
            // again next time, harmlessly). Unless it would take a delete
            // along: a row left for later may take the deleted row's
            // identity (the same post imported again), and Postgres must
            // see one upsert, not the row deleted with its dependents and
            // inserted again. Such a batch goes whole, as before the cut.
            const std::int64_t cut = cut_before(coalesced, key) - 1;
            if (cut < first_delete) {
                batch.last_seq = cut;
                break;
            }
            whole = true;
        }
        const OutboxEntry& e = *it->second.first;
        const std::vector<sqlite::Value> local_key = e.local_id
                                                         ? std::vector<sqlite::Value>{*e.local_id}
                                                         : detail::link_key_values(e.row_key);
        builder.add(mapping(e.table), local_key, it->second.insert, it->second.changed);
    }
    batch.entries = std::count_if(entries.begin(), entries.end(),
                                  [&](const OutboxEntry& e) { return e.seq <= batch.last_seq; });
    batch.more = batch.last_seq < entries.back().seq ||
                 std::ssize(entries) >= std::int64_t{options_.push_batch};
    std::set<std::string> upserted;
    for (const auto& u : batch.upserts) upserted.insert(u.uuid);
    for (const OutboxEntry* e : coalesced.deletes) {
        if (e->seq > batch.last_seq)
            break;  // in order: the rest wait for the next batch too
        const auto& m = mapping(e->table);
        const auto uuid = deleted_row_uuid(*e, m, builder.rows(), ids_);
        // A row deleted and created again under the same identity is an upsert.
        if (uuid && !upserted.count(*uuid) && !identity_in_use(*e, m, *uuid, builder.rows(), ids_))
            batch.deletes.emplace_back(&m, *uuid);
    }
    txn.commit();
    if (builder.assigned_random()) {
        // New random identities are on disk before Postgres hears of them:
        // a commit that waits for the disk takes every earlier one with it.
        sqlite::Transaction durable(replica_.db());
        replica_.set_meta("identities_on_disk_through", std::to_string(batch.last_seq));
        durable.commit();
    }
    pacer_.after_write(std::chrono::steady_clock::now() - t0);
    return batch;
}

void SyncEngine::send_push(pqxx::work& tx, PreparedPush& batch, const std::string& name,
                           bool isolate_rows) {
    const std::string& me = replica_.replica_id();
    tx.exec_params("SELECT set_config('lestash.origin', $1, true)", me);
    const auto seen =
        tx.exec_params("SELECT last_seq FROM lestash.replicas WHERE id = $1::uuid FOR UPDATE", me);
    if (!seen.empty() && seen[0][0].as<std::int64_t>() >= batch.last_seq) {
        batch.already_applied = true;  // committed before, the acknowledgement was lost
        return;
    }
    BatchWriter writer(tx, isolate_rows, me, batch.revs, batch.dead);
    for (const auto& m : mappings_) writer.upserts(m, batch.upserts);
    for (auto m = mappings_.rbegin(); m != mappings_.rend(); ++m) writer.deletes(*m, batch.deletes);
    tx.exec_params(
        "INSERT INTO lestash.replicas (id, name, last_seq, last_push_at) VALUES ($1::uuid, $2, $3, "
        "now()) ON CONFLICT (id) DO UPDATE SET last_seq = greatest(lestash.replicas.last_seq, "
        "excluded.last_seq), name = excluded.name, last_push_at = now()",
        me, name, batch.last_seq);
}

void SyncEngine::finish_push(const PreparedPush& batch) {
    pacer_.before_write();
    const auto t0 = std::chrono::steady_clock::now();
    // A finish lost to a power cut leaves the state of a crash right after
    // the Postgres commit, which the retried batch recovers (already
    // applied: skipped, outbox cleared). Dead letters are not re-derived
    // that way: a batch with any waits for the disk.
    std::optional<sqlite::DiskDeferredTransaction> deferred;
    std::optional<sqlite::Transaction> on_disk;
    if (batch.dead.empty())
        deferred.emplace(replica_.db());
    else
        on_disk.emplace(replica_.db());
    replica_.outbox().drop_through(batch.last_seq);
    std::map<std::string, const std::string*> link_rows;  // uuid -> table
    for (const auto& u : batch.upserts)
        if (!u.map->spec->keyed_by_rowid())
            link_rows[u.uuid] = &u.map->spec->name;
    for (const auto& [uuid, rev] : batch.revs) {
        if (const auto link = link_rows.find(uuid); link != link_rows.end())
            ids_.set_link_rev(*link->second, uuid, rev);
        else
            ids_.set_server_rev(uuid, rev);
    }
    detail::StatementCache rows(replica_.db());
    for (const auto& [map, uuid] : batch.deletes) {
        if (!map->spec->keyed_by_rowid()) {
            ids_.forget_link(uuid);
            continue;
        }
        // The local row is gone; its identity is no longer needed here.
        const auto known = ids_.by_uuid(map->spec->name, uuid);
        if (known && !detail::read_local_row(rows, *map, {sqlite::Value{known->local_id}}))
            ids_.forget(uuid);
    }
    DeadLetters dead_letters(replica_.db());
    for (const auto& d : batch.dead) dead_letters.add(d);
    if (deferred)
        deferred->commit();
    else
        on_disk->commit();
    pacer_.after_write(std::chrono::steady_clock::now() - t0);
}

std::optional<SyncEngine::PreparedPush> SyncEngine::prepare_ahead(std::int64_t after_seq) {
    try {
        const auto entries = replica_.outbox().read(after_seq, options_.push_batch);
        if (entries.empty())
            return std::nullopt;
        return prepare_push(entries);
    } catch (...) {
        // The next step reads the same entries again on the sync thread,
        // where the same failure is raised and reported like any other.
        return std::nullopt;
    }
}

void SyncEngine::send_batch(PreparedPush& batch, const std::string& name) {
    try {
        upstream_.transact(
            "pushing " + std::to_string(batch.entries) + " local changes to " + upstream_.target(),
            [&](pqxx::work& tx) { send_push(tx, batch, name, false); });
    } catch (const UpstreamError& e) {
        if (e.transient())
            throw;
        // Something in the batch is refused for good: find which rows,
        // push the rest, keep the refused ones as dead letters.
        batch.revs.clear();
        batch.dead.clear();
        upstream_.transact("pushing local changes row by row to " + upstream_.target(),
                           [&](pqxx::work& tx) { send_push(tx, batch, name, true); });
    }
}

PushStats SyncEngine::push_batch() {
    std::optional<PreparedPush> none;
    return push_step(none, false);
}

PushStats SyncEngine::push_all() {
    PushStats total;
    std::optional<PreparedPush> next;
    while (!(options_.should_stop && options_.should_stop())) {
        const PushStats s = push_step(next, true);
        total += s;
        if (s.entries == 0)
            break;
    }
    return total;
}

PushStats SyncEngine::push_step(std::optional<PreparedPush>& next, bool look_ahead) {
    if (follow_schema())
        next.reset();  // prepared with the mappings just replaced
    PreparedPush batch;
    if (next) {
        batch = std::move(*next);
        next.reset();
    } else {
        const auto entries = replica_.outbox().read(0, options_.push_batch);
        if (entries.empty())
            return {};
        batch = prepare_push(entries);
    }
    fault("push:send");
    const std::string name = replica_name();
    // While Postgres writes this batch (its CPU is most of a push's time),
    // the next one is read from SQLite on another thread. The SQLite
    // connection, the identities and the pacer are that thread's until it
    // is joined; this one only talks to Postgres, waiting in poll where the
    // response guard looks for a silent server.
    std::future<std::optional<PreparedPush>> ahead;
    if (look_ahead && batch.more && replica_.schema_followed())
        ahead = std::async(std::launch::async,
                           [this, after = batch.last_seq] { return prepare_ahead(after); });
    // On a failure the future's destructor waits for that thread to let go.
    send_batch(batch, name);
    if (ahead.valid()) {
        next = ahead.get();
        if (next && !next->holds_after(batch))
            next.reset();
    }
    fault("push:after-commit");
    finish_push(batch);
    fault("push:outbox-cleared");
    PushStats stats;
    stats.entries = batch.entries;
    stats.already_applied = batch.already_applied ? 1 : 0;
    stats.dead_lettered = static_cast<std::int64_t>(batch.dead.size());
    if (!batch.already_applied) {
        stats.upserted = static_cast<std::int64_t>(batch.upserts.size() - batch.dead.size());
        stats.deleted = static_cast<std::int64_t>(batch.deletes.size());
    }
    return stats;
}

}  // namespace lestash
