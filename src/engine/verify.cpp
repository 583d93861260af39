// Verify: prove a replica equals Postgres without downloading everything.
// Both sides turn each row into the same canonical text (storage class and
// exact bytes of every column, references as UUIDs); Postgres hashes its
// rows itself, so only per-bucket digests cross the wire unless a bucket
// differs, and then only per-row hashes of that bucket.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "lestash_sync/common/md5.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/common/value_text.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "local_rows.hpp"

namespace lestash {
using sqlite::quote_identifier;

bool VerifyReport::matches() const {
    for (const auto& t : tables)
        if (!t.matches())
            return false;
    return true;
}

namespace {

// A row's canonical text (each column's tagged_value with TEXT as hex,
// references as "u:<uuid>", '|' between), computed by Postgres from the
// stored row.
std::string canonical_sql(const TableMapping& m) {
    std::string out;
    for (const auto& c : m.columns) {
        const std::string col = quote_identifier(c.name);
        std::string typed;
        switch (c.type) {
            case PgType::text:
                typed = "'t:' || encode(convert_to(" + col + ", 'UTF8'), 'hex')";
                break;
            case PgType::bigint:
                typed = "'i:' || " + col + "::text";
                break;
            case PgType::boolean:
                typed = "CASE WHEN " + col + " THEN 'i:1' ELSE 'i:0' END";
                break;
            case PgType::float8:
                typed = "'r:' || " + col + "::text";
                break;
            case PgType::bytea:
                typed = "'b:' || encode(" + col + ", 'hex')";
                break;
            case PgType::uuid:
                typed = "'u:' || " + col + "::text";
                break;
        }
        const std::string o = "\"_sqlite\" -> " + sqlite::quote_literal(c.name);
        const std::string ov = "CASE " + o + " ->> 0 WHEN 'integer' THEN 'i:' || (" + o +
                               " ->> 1) WHEN 'real' THEN "
                               "'r:' || (" +
                               o + " ->> 1) WHEN 'text' THEN 't:' || encode(convert_to(" + o +
                               " ->> 1, 'UTF8'), 'hex') WHEN 'text-hex' THEN 't:' || (" + o +
                               " ->> 1) WHEN 'blob' "
                               "THEN 'b:' || (" +
                               o + " ->> 1) END";
        out += std::string(out.empty() ? "" : " || '|' || ") + "(CASE WHEN " + col +
               " IS NOT NULL THEN " + typed + " WHEN " + o + " IS NOT NULL THEN " + ov +
               " ELSE 'n' END)";
    }
    return out.empty() ? "''" : out;
}

std::int64_t digest_bits(const std::string& md5) {
    return static_cast<std::int64_t>(std::stoull(md5.substr(0, 16), nullptr, 16));
}

}  // namespace

std::map<std::string, std::string> SyncEngine::local_canonical_rows(const std::string& table) {
    std::map<std::string, std::string> out;
    for_each_local_canonical_row(table, [&out](const std::string& uuid, const std::string& text,
                                               const auto&) { out[uuid] = text; });
    return out;
}

void SyncEngine::for_each_local_canonical_row(const std::string& table,
                                              const CanonicalRowVisitor& visit) {
    const auto& m = mapping(table);
    std::string cols;
    for (const auto& k : m.spec->local_key)
        cols += (cols.empty() ? "" : ", ") + quote_identifier(k);
    for (const auto& c : m.columns) cols += ", " + quote_identifier(c.name);
    sqlite::Statement st(replica_.db(), "SELECT " + cols + " FROM " + quote_identifier(table));
    const int key_count = static_cast<int>(m.spec->local_key.size());
    std::vector<sqlite::Value> key;
    while (st.step()) {
        key.clear();
        for (int i = 0; i < key_count; ++i) key.push_back(st.value(i));
        std::string uuid;
        if (m.spec->keyed_by_rowid()) {
            const auto known = ids_.by_local_id(table, st.integer(0));
            if (!known)
                continue;  // never pushed: not upstream's business yet
            uuid = known->uuid;
        } else {
            std::vector<std::string> parents;
            for (int i = 0; i < key_count; ++i)
                if (auto p = ids_.by_local_id(
                        m.spec->foreign_keys[static_cast<size_t>(i)].parent_table, st.integer(i)))
                    parents.push_back(p->uuid);
            if (parents.size() != static_cast<size_t>(key_count))
                continue;
            uuid = link_row_uuid(*m.spec, parents);
        }
        std::string text;
        for (size_t i = 0; i < m.columns.size(); ++i) {
            const auto v = st.value(key_count + static_cast<int>(i));
            std::string part;
            if (m.columns[i].fk) {
                const auto p = v.index() == 1
                                   ? ids_.by_local_id(m.columns[i].fk->parent_table, std::get<1>(v))
                                   : std::nullopt;
                part = p ? "u:" + p->uuid
                         : (v.index() == 0 ? "n" : "?local:" + tagged_value(v, TextAs::hex));
            } else {
                part = tagged_value(v, TextAs::hex);
            }
            text += (i ? "|" : "") + part;
        }
        visit(uuid, text, key);
    }
}

std::map<std::string, std::string> SyncEngine::upstream_canonical_rows(const std::string& table) {
    const auto& m = mapping(table);
    return upstream_.transact<pqxx::read_transaction>(
        "reading lestash." + table + " for verify", [&](pqxx::read_transaction& tx) {
            std::map<std::string, std::string> out;
            for (const auto& r : tx.exec("SELECT \"id\"::text, " + canonical_sql(m) +
                                         " FROM lestash." + quote_identifier(table)))
                out[r[0].as<std::string>()] = r[1].as<std::string>();
            return out;
        });
}

std::map<std::string, std::string> SyncEngine::local_row_hashes(const TableMapping& m,
                                                                const std::set<std::string>& skip,
                                                                const std::string* buckets) {
    std::map<std::string, std::string> out;
    for_each_local_canonical_row(
        m.spec->name, [&](const std::string& uuid, const std::string& text, const auto&) {
            if ((!buckets || buckets->find(uuid[0]) != std::string::npos) && !skip.count(uuid))
                out[uuid] = md5_hex(text);
        });
    return out;
}

namespace {

// Per first hex digit of the UUID: how many rows, and the xor of their
// digests' first 64 bits.
using Buckets = std::map<char, std::pair<std::int64_t, std::int64_t>>;

// The same digests, computed by Postgres over the rows not in `skip_list`.
Buckets upstream_buckets(pqxx::transaction_base& tx, const TableMapping& m,
                         const std::string& table, const std::string& skip_list,
                         std::int64_t& rows) {
    Buckets out;
    for (const auto& r :
         tx.exec_params("SELECT substr(\"id\"::text, 1, 1), count(*), bit_xor(('x' || "
                        "substr(md5(" +
                            canonical_sql(m) + "), 1, 16))::bit(64)::bigint) FROM " + table +
                            " WHERE NOT (\"id\" = ANY($1::uuid[])) GROUP BY 1",
                        skip_list)) {
        out[r[0].as<std::string>()[0]] = {r[1].as<std::int64_t>(), r[2].as<std::int64_t>()};
        rows += r[1].as<std::int64_t>();
    }
    return out;
}

// Row by row in a bucket whose digests differ: which rows are missing on
// either side, which differ.
void compare_bucket(pqxx::transaction_base& tx, const TableMapping& m, const std::string& table,
                    const std::string& skip_list, char bucket,
                    const std::map<std::string, std::string>& local, TableVerifyReport& t) {
    std::map<std::string, std::string> up_rows;
    for (const auto& r : tx.exec_params(
             "SELECT \"id\"::text, md5(" + canonical_sql(m) + ") FROM " + table +
                 " WHERE substr(\"id\"::text, 1, 1) = $1 AND NOT (\"id\" = ANY($2::uuid[]))",
             std::string(1, bucket), skip_list))
        up_rows[r[0].as<std::string>()] = r[1].as<std::string>();
    for (const auto& [uuid, hash] : up_rows) {
        auto it = local.find(uuid);
        if (it == local.end())
            t.missing_locally.push_back(uuid);
        else if (it->second != hash)
            t.different.push_back(uuid);
    }
    for (auto it = local.lower_bound(std::string(1, bucket));
         it != local.end() && it->first[0] == bucket; ++it)
        if (!up_rows.count(it->first))
            t.missing_upstream.push_back(it->first);
}

}  // namespace

std::map<std::string, std::set<std::string>> SyncEngine::pending_uuids() {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& [table, key] : replica_.outbox().pending_rows()) {
        // clang 14 cannot capture a structured binding in a lambda.
        const std::string& name = table;
        const auto m = std::find_if(mappings_.begin(), mappings_.end(),
                                    [&](const auto& x) { return x.spec->name == name; });
        if (m == mappings_.end())
            continue;
        if (m->spec->keyed_by_rowid()) {
            if (const auto known = ids_.by_local_id(table, std::stoll(key)))
                out[table].insert(known->uuid);
            continue;
        }
        // A link row: its UUID from its parents'.
        const auto values = detail::link_key_values(key);
        std::vector<std::string> parents;
        for (size_t i = 0; i < values.size() && i < m->spec->foreign_keys.size(); ++i)
            if (values[i].index() == 1)
                if (const auto p = ids_.by_local_id(m->spec->foreign_keys[i].parent_table,
                                                    std::get<std::int64_t>(values[i])))
                    parents.push_back(p->uuid);
        if (parents.size() == m->spec->foreign_keys.size())
            out[table].insert(link_row_uuid(*m->spec, parents));
    }
    return out;
}

VerifyReport SyncEngine::verify(bool repair, const VerifyProgress& progress) {
    follow_schema();
    VerifyReport report;
    // Rows with local edits not pushed yet legitimately differ: left out.
    auto pending = pending_uuids();
    report.pending_local_rows = replica_.outbox().depth();
    std::vector<std::pair<std::string, std::string>> to_repair;
    int done = 0;
    for (const auto& m : mappings_) {
        TableVerifyReport t = verify_table(m, pending[m.spec->name]);
        if (repair && !t.matches())
            plan_repair(m, t, to_repair);
        report.tables.push_back(std::move(t));
        if (progress)
            progress(m.spec->name, ++done, static_cast<int>(mappings_.size()));
    }
    if (repair && !to_repair.empty()) {
        push_all();  // what Postgres never had, first
        // On disk before the report says repaired: nothing would redo it.
        refetch(to_repair, true);
        apply_deferred();
    }
    return report;
}

namespace {

// The per-column parts of a canonical row text (none of them holds '|').
std::vector<std::string> column_parts(const std::string& text) {
    std::vector<std::string> out;
    for (size_t pos = 0;;) {
        const size_t bar = text.find('|', pos);
        out.push_back(text.substr(pos, bar - pos));
        if (bar == std::string::npos)
            return out;
        pos = bar + 1;
    }
}

}  // namespace

void SyncEngine::plan_repair(const TableMapping& m, TableVerifyReport& t,
                             std::vector<std::pair<std::string, std::string>>& refetch) {
    const std::string& table = m.spec->name;
    // What this replica knows: its rows' values and keys, and the revision
    // it last saw each of them at (none: Postgres never acknowledged it).
    std::set<std::string> wanted(t.different.begin(), t.different.end());
    wanted.insert(t.missing_upstream.begin(), t.missing_upstream.end());
    struct LocalRow {
        std::string text;
        std::vector<sqlite::Value> key;
    };
    std::map<std::string, LocalRow> local;
    for_each_local_canonical_row(
        table, [&](const std::string& uuid, const std::string& text, const auto& key) {
            if (wanted.count(uuid))
                local[uuid] = {text, key};
        });
    const auto seen_at = [&](const std::string& uuid) {
        if (!m.spec->keyed_by_rowid())
            return ids_.link_rev(uuid);
        const auto known = ids_.by_uuid(table, uuid);
        return known ? known->server_rev : std::nullopt;
    };
    // What Postgres has: the rows' texts and when each column last changed.
    struct UpstreamRow {
        std::string text;
        nlohmann::json col_revs;
    };
    std::map<std::string, UpstreamRow> upstream;
    if (!t.different.empty())
        upstream_.transact<pqxx::read_transaction>(
            "reading the differing rows of " + table, [&](pqxx::read_transaction& tx) {
                for (const auto& r :
                     tx.exec_params("SELECT \"id\"::text, " + canonical_sql(m) +
                                        ", \"_col_revs\"::text FROM lestash." +
                                        quote_identifier(table) + " WHERE \"id\" = ANY($1::uuid[])",
                                    detail::uuid_array_literal(t.different)))
                    upstream[r[0].as<std::string>()] = {r[1].as<std::string>(),
                                                        nlohmann::json::parse(r[2].c_str())};
            });

    sqlite::Transaction txn(replica_.db());
    for (const auto& uuid : t.different) {
        const auto mine = local.find(uuid);
        const auto theirs = upstream.find(uuid);
        std::vector<std::string> push;
        if (mine != local.end() && theirs != upstream.end()) {
            const auto rev = seen_at(uuid);
            const auto a = column_parts(mine->second.text), b = column_parts(theirs->second.text);
            for (size_t i = 0; i < m.columns.size() && i < a.size() && i < b.size(); ++i) {
                if (a[i] == b[i])
                    continue;
                const auto& name = m.columns[i].name;
                const auto& cr = theirs->second.col_revs;
                const std::int64_t changed_at =
                    cr.contains(name) ? cr[name].at(0).get<std::int64_t>() : 0;
                if (!rev || changed_at <= *rev)
                    push.push_back(name);  // Postgres has not changed it since: ours is newer
            }
        }
        if (!push.empty()) {
            replica_.outbox().enqueue_row(*m.spec, 'U', mine->second.key, push);
            ++t.pushed;
        } else {
            ++t.fetched;
        }
        refetch.emplace_back(table, uuid);
    }
    for (const auto& uuid : t.missing_upstream) {
        const auto mine = local.find(uuid);
        if (mine != local.end() && !seen_at(uuid)) {
            replica_.outbox().enqueue_row(*m.spec, 'I', mine->second.key, {});  // never got it
            ++t.pushed;
        } else {
            ++t.fetched;  // deleted upstream: removed here
        }
        refetch.emplace_back(table, uuid);
    }
    for (const auto& uuid : t.missing_locally) {
        ++t.fetched;
        refetch.emplace_back(table, uuid);
    }
    txn.commit();
    t.repaired = t.pushed + t.fetched;
}

TableVerifyReport SyncEngine::verify_table(const TableMapping& m,
                                           const std::set<std::string>& skip) {
    TableVerifyReport t;
    t.table = m.spec->name;
    // The local digests in one pass that keeps nothing per row: memory
    // stays flat whatever the table's size (a map of 200k rows' hashes was
    // 40 MB). Only the rows of buckets that differ are hashed again, kept.
    Buckets mine;
    for_each_local_canonical_row(
        m.spec->name, [&](const std::string& uuid, const std::string& text, const auto&) {
            if (skip.count(uuid))
                return;
            auto& b = mine[uuid[0]];
            ++b.first;
            b.second ^= digest_bits(md5_hex(text));
            ++t.local_rows;
        });
    const std::string table = "lestash." + quote_identifier(t.table);
    const std::string skip_list = detail::uuid_array_literal({skip.begin(), skip.end()});
    upstream_.transact<pqxx::read_transaction>(
        "verifying " + t.table + " against " + upstream_.target(), [&](pqxx::read_transaction& tx) {
            auto theirs = upstream_buckets(tx, m, table, skip_list, t.upstream_rows);
            std::string differing;
            for (char b : std::string("0123456789abcdef")) {
                ++t.buckets_compared;
                if (mine[b] != theirs[b])
                    differing += b;
            }
            t.buckets_differing = static_cast<std::int64_t>(differing.size());
            if (differing.empty())
                return;
            const auto local = local_row_hashes(m, skip, &differing);
            for (char b : differing) compare_bucket(tx, m, table, skip_list, b, local, t);
        });
    return t;
}

}  // namespace lestash
