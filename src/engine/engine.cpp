// The sync engine's shared state: which columns are synced (present locally
// and upstream), the identity map, and the stats types.
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "engine_internal.hpp"
#include "lestash_sync/engine/sync_engine.hpp"

namespace lestash {

PushStats& PushStats::operator+=(const PushStats& o) {
    entries += o.entries;
    upserted += o.upserted;
    deleted += o.deleted;
    dead_lettered += o.dead_lettered;
    already_applied += o.already_applied;
    return *this;
}

PullStats& PullStats::operator+=(const PullStats& o) {
    changes += o.changes;
    applied += o.applied;
    deleted += o.deleted;
    deferred += o.deferred;
    return *this;
}

const MappedColumn* TableMapping::find(const std::string& name) const {
    for (const auto& c : columns)
        if (c.name == name)
            return &c;
    return nullptr;
}

SyncEngine::SyncEngine(Replica& replica, Upstream& upstream, SyncOptions options)
    : replica_(replica), upstream_(upstream), options_(std::move(options)), ids_(replica.db()) {
    upstream_.require_schema();
    refresh_mappings();
}

SyncEngine::~SyncEngine() = default;

void SyncEngine::refresh_mappings() {
    std::vector<std::string> tables;
    for (const auto& spec : replica_.tables()) tables.push_back(spec.name);
    const UpstreamSchema schema = upstream_.read_schema(tables);
    mappings_.clear();
    for (const auto& spec : replica_.tables()) {
        TableMapping m;
        m.spec = &spec;
        const auto& upstream_table = schema.at(spec.name);
        for (const auto& name : replica_.live_columns(spec.name)) {
            if (spec.keyed_by_rowid() && name == spec.local_key[0])
                continue;
            const auto* up = upstream_table.find(name);
            if (!up)
                continue;  // a local column Postgres does not have: stays local
            const ForeignKey* fk = spec.foreign_key(name);
            if ((up->type == PgType::uuid) != (fk != nullptr))
                throw SchemaError("column " + spec.name + "." + name +
                                  (fk ? " is a reference locally but not upstream"
                                      : " is a UUID upstream but not a known reference locally") +
                                  " — the upstream schema does not match this daemon; run "
                                  "lestash-syncd migrate");
            m.columns.push_back({name, up->type, fk});
        }
        for (const auto& k : spec.natural_key) {
            const auto* c = m.find(k);
            if (!c)
                throw SchemaError("natural key column " + spec.name + "." + k +
                                  " is missing upstream — run lestash-syncd migrate");
            m.natural_key.push_back(static_cast<size_t>(c - m.columns.data()));
        }
        mappings_.push_back(std::move(m));
    }
}

const TableMapping& SyncEngine::mapping(const std::string& table) const {
    for (const auto& m : mappings_)
        if (m.spec->name == table)
            return m;
    throw SchemaError("table " + table + " is not synced");
}

std::string SyncEngine::replica_name() {
    return replica_.name();
}

void SyncEngine::fault(std::string_view point) {
    if (options_.fault_hook)
        options_.fault_hook(point);
}

PushStats SyncEngine::push_all() {
    PushStats total;
    while (!(options_.should_stop && options_.should_stop())) {
        const PushStats s = push_batch();
        total += s;
        if (s.entries == 0)
            break;
    }
    return total;
}

std::pair<PushStats, PullStats> SyncEngine::sync_once() {
    const PushStats pushed = push_all();
    PullStats pulled = apply_deferred();
    pulled += pull_all();
    pulled += apply_deferred();
    return {pushed, pulled};
}

PullStats SyncEngine::pull_all() {
    PullStats total;
    while (!(options_.should_stop && options_.should_stop())) {
        const PullStats s = pull_batch();
        total += s;
        if (s.changes == 0)
            break;
    }
    return total;
}

namespace detail {

std::string select_row_sql(const TableMapping& m) {
    std::string sql = "SELECT ";
    for (size_t i = 0; i < m.columns.size(); ++i)
        sql += (i ? ", " : "") + sqlite::quote_identifier(m.columns[i].name);
    sql += " FROM " + sqlite::quote_identifier(m.spec->name) + " WHERE ";
    for (size_t i = 0; i < m.spec->local_key.size(); ++i)
        sql += (i ? " AND " : "") + sqlite::quote_identifier(m.spec->local_key[i]) + " = ?";
    return sql;
}

sqlite::Statement& StatementCache::get(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end())
        it = statements_.emplace(sql, std::make_unique<sqlite::Statement>(db_, sql)).first;
    return *it->second;
}

std::optional<std::vector<sqlite::Value>> read_local_row(StatementCache& cache,
                                                         const TableMapping& m,
                                                         const std::vector<sqlite::Value>& key) {
    auto& st = cache.get(select_row_sql(m));
    for (size_t i = 0; i < key.size(); ++i) st.bind(static_cast<int>(i + 1), key[i]);
    std::optional<std::vector<sqlite::Value>> out;
    if (st.step()) {
        out.emplace();
        out->reserve(m.columns.size());
        for (int i = 0; i < st.column_count(); ++i) out->push_back(st.value(i));
    }
    st.reset();
    return out;
}

std::vector<sqlite::Value> link_key_values(const std::string& row_key_json) {
    std::vector<sqlite::Value> out;
    for (const auto& v : nlohmann::json::parse(row_key_json)) {
        if (v.is_number_integer())
            out.emplace_back(v.get<std::int64_t>());
        else if (v.is_string())
            out.emplace_back(v.get<std::string>());
        else
            out.emplace_back(std::monostate{});
    }
    return out;
}

std::string uuid_array_literal(const std::vector<std::string>& uuids) {
    std::string out = "{";
    for (size_t i = 0; i < uuids.size(); ++i) out += (i ? "," : "") + uuids[i];
    return out + "}";
}

}  // namespace detail
}  // namespace lestash
