// Pull: read the change log (upstream/change_log.hpp) after the replica's
// cursor, fetch the current state of the rows it names, and hand them to
// apply (apply.cpp) in short SQLite transactions, the cursor saved with the
// last one. A replica with no cursor, or one the change log was compacted
// past, copies every table from one snapshot instead (bootstrap).
#include <spdlog/spdlog.h>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apply.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "lestash_sync/replica/held_back.hpp"
#include "lestash_sync/upstream/change_log.hpp"
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

// The first page of a bootstrap, the first slice of a pull's rows: small,
// since nothing tells yet how large the rows are (16 rows of 300 KB are
// 4.8 MB); the next ones are sized from what those held
// (SyncOptions::batch_bytes).
constexpr size_t kFirstRows = 16;

size_t rows_for(size_t bytes_left, size_t rows_so_far, size_t bytes_so_far, size_t most) {
    if (rows_so_far == 0)
        return std::min(kFirstRows, most);
    const size_t per_row = std::max<size_t>(1, bytes_so_far / rows_so_far);
    // At most twice as many as so far: small rows (tags, deletes) first say
    // little about what follows, and 2000 PDFs sized from them would be 600 MB.
    return std::clamp<size_t>(bytes_left / per_row, 1, std::min(most, 2 * rows_so_far));
}

FetchedRow row_from(const pqxx::row& r, const TableMapping& m, size_t& bytes) {
    FetchedRow f;
    f.uuid = r[0].as<std::string>();
    f.exists = true;
    for (size_t i = 0; i < m.columns.size(); ++i) {
        const auto& field = r[static_cast<int>(i + 1)];
        bytes += field.size();
        f.values.push_back(field.is_null() ? std::nullopt
                                           : std::optional<std::string>(field.c_str()));
    }
    bytes += f.uuid.size() + r[static_cast<int>(m.columns.size() + 2)].size();
    f.rev = r[static_cast<int>(m.columns.size() + 1)].as<std::int64_t>();
    const auto& o = r[static_cast<int>(m.columns.size() + 2)];
    f.overrides = o.is_null() ? json(nullptr) : json::parse(o.c_str());
    return f;
}

// The rows the entries name, once each, in the order of their first entry,
// leaving out the echo of our own pushes (the replica has them) and tables
// not synced here; `first_entry[i]` is the index in `log` of row i's first.
std::vector<std::pair<std::string, std::string>> rows_to_fetch(
    const std::vector<ChangeLogEntry>& log, const std::string& own_replica_id,
    const std::vector<TableMapping>& mappings, std::vector<size_t>& first_entry) {
    std::vector<std::pair<std::string, std::string>> keys;
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < log.size(); ++i) {
        const auto& e = log[i];
        if (e.origin && *e.origin == own_replica_id)
            continue;
        if (std::none_of(mappings.begin(), mappings.end(),
                         [&](const auto& m) { return m.spec->name == e.table; }))
            continue;
        if (seen.insert({e.table, e.row_id}).second) {
            keys.emplace_back(e.table, e.row_id);
            first_entry.push_back(i);
        }
    }
    return keys;
}

}  // namespace

struct SyncEngine::FetchedRows {
    std::map<std::string, std::vector<FetchedRow>> by_table;
    size_t bytes = 0;  // of the values, as Postgres sent them
    bool empty() const { return by_table.empty(); }
};

void SyncEngine::fetch_rows(pqxx::transaction_base& tx, KeySpan keys, FetchedRows& out) {
    std::map<std::string, std::vector<std::string>> wanted;
    for (const auto& [table, uuid] : keys) wanted[table].push_back(uuid);
    for (const auto& [table, uuids] : wanted) {
        const auto& m = mapping(table);
        auto& rows = out.by_table[table];
        std::set<std::string> found;
        for (const auto& r : tx.exec_params(fetch_sql(m, "WHERE \"id\" = ANY($1::uuid[])"),
                                            detail::uuid_array_literal(uuids))) {
            rows.push_back(row_from(r, m, out.bytes));
            found.insert(rows.back().uuid);
        }
        for (const auto& u : uuids)
            if (!found.count(u))
                rows.push_back(FetchedRow{u, false, {}, 0, nullptr});  // gone upstream: deleted
    }
}

PullStats SyncEngine::apply_rows(const FetchedRows& rows, const std::string* cursor,
                                 bool wait_for_disk) {
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
            ApplyScope scope(replica_.db(), wait_for_disk);
            RowApplier applier(replica_.db(), ids_, mappings_);
            stats += applier.apply({order.begin() + static_cast<std::ptrdiff_t>(done),
                                    order.begin() + static_cast<std::ptrdiff_t>(done + n)});
            done += n;
            if (done == order.size() && cursor) {
                fault("pull:before-cursor-save");
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
    // Every table in pages from one snapshot, each page applied in its own
    // short transaction; then the change log is followed from the
    // snapshot's horizon.
    PullStats stats;
    std::map<std::string, std::set<std::string>> seen;
    const auto horizon = upstream_.transact<SnapshotRead>(
        "copying the upstream tables from " + upstream_.target(), [&](SnapshotRead& tx) {
            auto horizon = change_log_horizon(tx);
            for (const auto& m : mappings_)
                stats += copy_table(tx, m, resync ? &seen[m.spec->name] : nullptr);
            return horizon;
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
    replica_.set_meta("pull_cursor", horizon.text());
    for (const auto& m : mappings_) record_mapped(m);  // every table copied: nothing to catch up
    scope.commit();
    catch_ups_.clear();
    pacer_.after_write(std::chrono::milliseconds(1));
    return stats;
}

PullStats SyncEngine::run_catch_ups() {
    // Changes before the cursor were skipped for these tables; the
    // snapshot has their result. Changes after it follow as usual.
    PullStats stats;
    upstream_.transact<SnapshotRead>(
        "fetching the rows of " + catch_ups_.front() + " again from " + upstream_.target(),
        [&](SnapshotRead& tx) {
            while (!catch_ups_.empty()) {
                const auto& m = mapping(catch_ups_.front());
                const PullStats copied = copy_table(tx, m, nullptr);
                stats += copied;
                record_mapped(m);
                spdlog::info(
                    "table {} caught up: {} rows fetched, {} applied, {} held for local "
                    "edits",
                    m.spec->name, copied.changes, copied.applied, copied.deferred);
                catch_ups_.erase(catch_ups_.begin());
            }
        });
    return stats;
}

PullStats SyncEngine::copy_table(pqxx::transaction_base& tx, const TableMapping& m,
                                 std::set<std::string>* seen) {
    PullStats stats;
    // In the order rows were created, so local ids keep that order.
    tx.exec("DECLARE lestash_bootstrap NO SCROLL CURSOR FOR " +
            fetch_sql(m, "ORDER BY \"_created\""));
    // Pages of up to twice a pull batch, fewer for rows large enough to
    // hold more than SyncOptions::batch_bytes.
    size_t page_rows = rows_for(0, 0, 0, 2 * static_cast<size_t>(options_.pull_batch));
    for (;;) {
        const auto page = tx.exec("FETCH " + std::to_string(page_rows) + " FROM lestash_bootstrap");
        if (page.empty())
            break;
        FetchedRows fetched;
        auto& rows = fetched.by_table[m.spec->name];
        for (const auto& r : page) {
            rows.push_back(row_from(r, m, fetched.bytes));
            if (seen)
                seen->insert(rows.back().uuid);
        }
        page_rows = rows_for(options_.batch_bytes, rows.size(), fetched.bytes,
                             2 * static_cast<size_t>(options_.pull_batch));
        stats += apply_rows(fetched, nullptr);
        stats.changes += static_cast<std::int64_t>(page.size());
    }
    tx.exec("CLOSE lestash_bootstrap");
    return stats;
}

struct SyncEngine::ChangesRead {
    bool compacted_past_us = false;
    FetchedRows fetched;
    std::string next_cursor;
    std::int64_t changes = 0;  // entries read
    std::size_t rows = 0;      // rows they name
    bool held_back = false;    // more committed entries wait below the horizon
    bool cut_short = false;    // the rows named reached SyncOptions::batch_bytes
};

PullStats SyncEngine::pull_batch() {
    follow_schema();
    const auto cursor_text = replica_.meta("pull_cursor");
    fault("pull:fetch");
    if (!cursor_text) {
        // A bootstrap that ran before and was cut short (a crash, a power
        // cut) left rows with identities: some may have been deleted
        // upstream since, so it runs as a resync. A new device's own rows
        // are kept: pushed ones are upstream, refused ones are dead letters
        // (RowApplier::never_upstream), unpushed ones wait in the outbox.
        return bootstrap(ids_.any());
    }
    PullStats stats = catch_ups_.empty() ? PullStats{} : run_catch_ups();
    const auto cursor = ChangeLogCursor::parse(*cursor_text);
    const auto read = upstream_.transact<SnapshotRead>(
        "pulling changes from " + upstream_.target(),
        [&](SnapshotRead& tx) { return read_changes(tx, cursor); });
    if (read.compacted_past_us)
        return bootstrap(true);
    stats.held_back = read.held_back;
    stats.caught_up = !read.held_back && !read.cut_short && read.changes < options_.pull_batch;
    if (read.changes == 0)
        return stats;
    spdlog::debug("pull: change log after {} up to {}: {} entries, {} rows fetched", *cursor_text,
                  read.next_cursor, read.changes, read.rows);
    fault("pull:after-fetch");
    PullStats applied = apply_rows(read.fetched, &read.next_cursor);
    applied.changes = read.changes;
    applied.caught_up = stats.caught_up;
    return stats += applied;
}

SyncEngine::ChangesRead SyncEngine::read_changes(pqxx::transaction_base& tx,
                                                 const ChangeLogCursor& cursor) {
    ChangesRead out;
    const auto ahead = change_log_ahead(tx, cursor);
    out.compacted_past_us = ahead.compacted_past;
    out.held_back = ahead.held_back;
    if (out.compacted_past_us)
        return out;
    const auto log = read_change_log(tx, cursor, options_.pull_batch);
    if (log.empty())
        return out;
    std::vector<size_t> first_entry;
    const auto keys = rows_to_fetch(log, replica_.replica_id(), mappings_, first_entry);
    // The rows in slices, in the order the log names them, until they hold
    // about batch_bytes; then the batch ends before the first entry of the
    // first row left out (a row fetched is its current state: entries of
    // it after that point are read again next time, harmlessly).
    size_t fetched = 0;
    while (fetched < keys.size() && (fetched == 0 || out.fetched.bytes < options_.batch_bytes)) {
        const size_t n =
            rows_for(options_.batch_bytes - std::min(options_.batch_bytes, out.fetched.bytes),
                     fetched, out.fetched.bytes, keys.size() - fetched);
        fetch_rows(tx, {keys.data() + fetched, n}, out.fetched);
        fetched += n;
    }
    size_t entries = log.size();
    if (fetched < keys.size()) {
        entries = first_entry[fetched];  // > 0: the first slice holds row 0
        out.cut_short = true;
    }
    out.next_cursor = ChangeLogCursor{log[entries - 1].xid, log[entries - 1].id}.text();
    out.changes = static_cast<std::int64_t>(entries);
    out.rows = fetched;
    return out;
}

PullStats SyncEngine::apply_deferred() {
    follow_schema();
    return refetch(DeferredRows(replica_.db()).all());
}

PullStats SyncEngine::refetch(const std::vector<std::pair<std::string, std::string>>& keys,
                              bool wait_for_disk) {
    if (keys.empty())
        return {};
    const auto fetched = upstream_.transact<pqxx::read_transaction>(
        "fetching " + std::to_string(keys.size()) + " rows from " + upstream_.target(),
        [&](pqxx::read_transaction& tx) {
            FetchedRows rows;
            fetch_rows(tx, {keys.data(), keys.size()}, rows);
            return rows;
        });
    return apply_rows(fetched, nullptr, wait_for_disk);
}

}  // namespace lestash
