// Pull: read the change log below the oldest running transaction, fetch the
// current state of the changed rows, and hand them to apply (apply.cpp) in
// short SQLite transactions, the cursor saved with the last one. A replica
// with no cursor, or one the change log was compacted past, copies every
// table from one snapshot instead (bootstrap).
#include <spdlog/spdlog.h>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apply.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "lestash_sync/replica/held_back.hpp"
#include "local_rows.hpp"

namespace lestash {
using detail::FetchedRow;
using detail::RowApplier;
// One consistent view of Postgres for a whole pull or bootstrap.
using SnapshotRead = pqxx::transaction<pqxx::repeatable_read, pqxx::readwrite_policy::read_only>;
using nlohmann::json;
using sqlite::quote_identifier;

namespace {

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

PullStats SyncEngine::apply_rows(const FetchedRows& rows, const std::string* cursor) {
    // As many transactions as it takes to hold the lock about
    // WritePacer::kTargetHold each, whatever the machine's speed; the row
    // count per transaction adapts. The cursor is saved with the last one.
    const auto order = detail::apply_order(mappings_, rows.by_table);
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
    std::map<std::string, std::set<std::string>> seen;
    const std::string horizon = upstream_.transact<SnapshotRead>(
        "copying the upstream tables from " + upstream_.target(), [&](SnapshotRead& tx) {
            const auto snapshot_xmin =
                tx.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0]
                    .as<std::string>();
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
            return snapshot_xmin;
        });
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
    struct ChangesRead {
        bool compacted_past_us = false;
        FetchedRows fetched;
        std::string next_cursor;
        std::int64_t changes = 0;
        std::size_t rows = 0;
    };
    const auto read = upstream_.transact<SnapshotRead>(
        "pulling changes from " + upstream_.target(), [&, xid = xid, id = id](SnapshotRead& tx) {
            ChangesRead out;
            out.compacted_past_us =
                tx.exec_params(
                      "SELECT count(*) > 0 FROM lestash.change_log_horizon WHERE (xid, id) > "
                      "($1::xid8, $2::bigint)",
                      xid, id)[0][0]
                    .as<bool>();
            if (out.compacted_past_us)
                return out;
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
            if (log.empty())
                return out;
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
            out.next_cursor = last[1].as<std::string>() + ":" + last[0].as<std::string>();
            out.changes = static_cast<std::int64_t>(log.size());
            out.rows = keys.size();
            out.fetched = fetch_rows(tx, keys);
            return out;
        });
    if (read.compacted_past_us)
        return bootstrap(true);
    if (read.changes == 0)
        return {};
    spdlog::debug("pull: change log after {} up to {}: {} entries, {} rows fetched", *cursor_text,
                  read.next_cursor, read.changes, read.rows);
    fault("pull:after-fetch");
    PullStats stats = apply_rows(read.fetched, &read.next_cursor);
    stats.changes = read.changes;
    return stats;
}

PullStats SyncEngine::apply_deferred() {
    return refetch(DeferredRows(replica_.db()).all());
}

PullStats SyncEngine::refetch(const std::vector<std::pair<std::string, std::string>>& keys) {
    if (keys.empty())
        return {};
    const auto fetched = upstream_.transact<pqxx::read_transaction>(
        "fetching " + std::to_string(keys.size()) + " rows from " + upstream_.target(),
        [&](pqxx::read_transaction& tx) { return fetch_rows(tx, keys); });
    return apply_rows(fetched, nullptr);
}

}  // namespace lestash
