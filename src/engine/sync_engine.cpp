// The sync engine's shared state: which columns are synced (present locally
// and upstream), the identity map, the stats types, and one sync cycle
// (push everything, pull until caught up).
#include "lestash_sync/engine/sync_engine.hpp"

#include <spdlog/spdlog.h>
#include <algorithm>

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
    held_back = held_back || o.held_back;
    caught_up = o.caught_up;  // the latest read's
    return *this;
}

const MappedColumn* TableMapping::find(const std::string& name) const {
    for (const auto& c : columns)
        if (c.name == name)
            return &c;
    return nullptr;
}

SyncEngine::SyncEngine(Replica& replica, Upstream& upstream, SyncOptions options)
    : replica_(replica),
      upstream_(upstream),
      options_(std::move(options)),
      ids_(replica.db()),
      pacer_(replica.path()) {
    upstream_.require_schema();
    refresh_mappings();
}

SyncEngine::~SyncEngine() = default;

bool SyncEngine::follow_schema() {
    if (!replica_.follow_schema_changes())
        return false;
    refresh_mappings();
    return true;
}

void SyncEngine::refresh_mappings() {
    std::vector<std::string> tables;
    for (const auto* spec : replica_.tables()) tables.push_back(spec->name);
    const UpstreamSchema schema = upstream_.read_schema(tables);
    mappings_.clear();
    for (const auto* spec_pointer : replica_.tables()) {
        const TableSpec& spec = *spec_pointer;
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
                                  " — the upstream schema does not match this daemon; run " +
                                  kMigrateCommand);
            m.columns.push_back({name, up->type, fk});
        }
        for (const auto& k : spec.natural_key) {
            const auto* c = m.find(k);
            if (!c)
                throw SchemaError("natural key column " + spec.name + "." + k +
                                  " is missing upstream — run " + kMigrateCommand);
            m.natural_key.push_back(static_cast<size_t>(c - m.columns.data()));
        }
        mappings_.push_back(std::move(m));
    }
    plan_catch_ups();
}

namespace {

std::vector<std::string> column_names(const TableMapping& m) {
    std::vector<std::string> out;
    for (const auto& c : m.columns) out.push_back(c.name);
    return out;
}

}  // namespace

void SyncEngine::record_mapped(const TableMapping& m) {
    replica_.set_meta("mapped:" + m.spec->name, nlohmann::json(column_names(m)).dump());
}

void SyncEngine::plan_catch_ups() {
    catch_ups_.clear();
    // Without a cursor the bootstrap copies every table anyway.
    const bool following = replica_.meta("pull_cursor").has_value();
    for (const auto& m : mappings_) {
        const auto before_text = replica_.meta("mapped:" + m.spec->name);
        std::vector<std::string> before, added;
        if (before_text)
            before = nlohmann::json::parse(*before_text).get<std::vector<std::string>>();
        for (const auto& c : column_names(m))
            if (std::find(before.begin(), before.end(), c) == before.end())
                added.push_back(c);
        if (added.empty() || !following) {
            if (!before_text || before != column_names(m))
                record_mapped(m);
            continue;
        }
        if (before_text) {
            // Columns synced now that were not: values they got here before
            // went nowhere (Postgres lacked the column), so they go first.
            sqlite::Transaction txn(replica_.db());
            replica_.queue_non_default_values(*m.spec, added);
            txn.commit();
        }
        std::string list;
        for (const auto& c : added) list += (list.empty() ? "" : ", ") + c;
        spdlog::info("table {} {}: its rows will be fetched again from {}", m.spec->name,
                     before_text ? "syncs new columns (" + list + ")" : "starts syncing",
                     upstream_.target());
        catch_ups_.push_back(m.spec->name);
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
        // Caught up: one more read would find nothing (a round of
        // Postgres queries per notification saved, issue 17's fan-out).
        if (s.changes == 0 || s.caught_up)
            break;
    }
    return total;
}

}  // namespace lestash
