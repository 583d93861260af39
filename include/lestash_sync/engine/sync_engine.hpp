// The sync cycle: push the outbox to Postgres exactly once, pull every change
// made elsewhere and apply it to the replica, converging column by column.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lestash_sync/replica/identity.hpp"
#include "lestash_sync/replica/replica.hpp"
#include "lestash_sync/replica/write_pacer.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

struct ChangeLogCursor;

struct SyncOptions {
    int push_batch = 500;
    int pull_batch = 2000;
    // Named points in push and pull where tests inject faults (throwing from
    // the hook simulates a crash right there): "push:after-commit",
    // "pull:after-fetch", "pull:before-cursor-save"; and the steps the daemon
    // logs at debug level: "push:send", "push:outbox-cleared", "pull:fetch",
    // "pull:apply", "pull:cursor-saved".
    std::function<void(std::string_view point)> fault_hook;
    // Checked between batches: a daemon shutting down finishes the batch in
    // flight and stops there.
    std::function<bool()> should_stop;
    // A push or pull batch, or a bootstrap page, also ends once its rows
    // hold about this many bytes (its first row always goes), so a daemon's
    // memory stays bounded whatever the rows' size: 2000 enriched PDFs of
    // 300 KB are 600 MB, 2000 notes 3 MB. 4 MiB: a bootstrap of notes peaks
    // at 27 MiB (pages of 2600 rows; 33.5 MiB with pages of 4000), one of
    // 300 KB items at 27 MiB (13 rows a page; 56 MiB at 8 MiB, 77 uncut).
    std::size_t batch_bytes = std::size_t{4} << 20;
};

struct PushStats {
    std::int64_t entries = 0;  // outbox entries consumed
    std::int64_t upserted = 0;
    std::int64_t deleted = 0;
    std::int64_t dead_lettered = 0;
    std::int64_t already_applied = 0;  // batches Postgres had seen (lost ack)
    PushStats& operator+=(const PushStats& o);
};

struct PullStats {
    std::int64_t changes = 0;  // change-log entries read
    std::int64_t applied = 0;  // rows inserted or updated locally
    std::int64_t deleted = 0;
    std::int64_t deferred = 0;  // rows held back by pending local edits
    // Committed changes left unread below a transaction still running on the
    // cluster (ChangeLogAhead::held_back): pull again soon, no event will come.
    bool held_back = false;
    // The change log read came back short of a batch, nothing held back:
    // everything committed before its snapshot is here, and whatever
    // commits after it sends a notification (pull_all stops; a one-batch
    // pull that read nothing new need not follow).
    bool caught_up = false;
    PullStats& operator+=(const PullStats& o);
};

// A synced column present both locally and upstream.
struct MappedColumn {
    std::string name;
    PgType type;
    const ForeignKey* fk = nullptr;  // values are local ids here, UUIDs upstream
};

struct TableMapping {
    const TableSpec* spec = nullptr;
    std::vector<MappedColumn> columns;
    std::vector<size_t> natural_key;  // indexes into columns
    const MappedColumn* find(const std::string& name) const;
};

struct TableVerifyReport {
    std::string table;
    std::int64_t local_rows = 0;
    std::int64_t upstream_rows = 0;
    std::int64_t buckets_compared = 0;
    std::int64_t buckets_differing = 0;
    std::vector<std::string> missing_locally;   // UUIDs
    std::vector<std::string> missing_upstream;  // UUIDs (mapped here, gone upstream)
    std::vector<std::string> different;         // UUIDs whose values differ
    // With repair: rows fixed (pushed + fetched). Pushed: this replica held
    // values Postgres never got (a column Postgres has not changed since the
    // replica last saw the row, a row it never acknowledged), sent as local
    // changes. Fetched: Postgres's newer values (or its delete) taken.
    std::int64_t repaired = 0;
    std::int64_t pushed = 0;
    std::int64_t fetched = 0;
    bool matches() const {
        return missing_locally.empty() && missing_upstream.empty() && different.empty();
    }
};

struct VerifyReport {
    std::vector<TableVerifyReport> tables;
    std::int64_t pending_local_rows = 0;  // rows with unpushed edits, left out
    bool matches() const;
};

// Called as verify proceeds: (table, tables done, tables in all).
using VerifyProgress = std::function<void(const std::string&, int, int)>;

class SyncEngine {
  public:
    SyncEngine(Replica& replica, Upstream& upstream, SyncOptions options = {});
    ~SyncEngine();

    // One batch each; `entries`/`changes` is 0 when there was nothing to do.
    PushStats push_batch();
    PullStats pull_batch();
    // Until the outbox is empty / the replica has caught up.
    PushStats push_all();
    PullStats pull_all();
    // Re-fetches rows whose remote change waited for local edits to be pushed.
    PullStats apply_deferred();
    // One full cycle: push everything pending, pull until caught up, apply
    // what waited for local edits.
    std::pair<PushStats, PullStats> sync_once();

    // Compares every synced table with Postgres: a digest per UUID bucket on
    // each side (hashed by Postgres itself upstream), then per-row hashes in
    // the buckets that differ. With `repair`, only the differing rows are
    // repaired, column by column, and never by losing a value Postgres never
    // had: a column Postgres changed after this replica last saw the row is
    // taken from Postgres; any other difference (and a row Postgres never
    // acknowledged) is pushed; then those rows are fetched again. Rows with
    // unpushed local edits are left out and counted.
    VerifyReport verify(bool repair, const VerifyProgress& progress = {});
    // uuid -> canonical text of every row, locally and upstream (for tests
    // and diagnostics; verify hashes these same strings).
    std::map<std::string, std::string> local_canonical_rows(const std::string& table);
    std::map<std::string, std::string> upstream_canonical_rows(const std::string& table);

    // Conflicts recorded upstream, oldest first, with the local id (and an
    // item's title) of each row; open ones only unless `include_resolved`.
    nlohmann::json list_conflicts(bool include_resolved, std::int64_t limit);
    // Changes refused for good, up to `limit` of each kind: this replica's
    // ("local", _lestash_sync_dead_letters) and the phones' upstream
    // ("phones", lestash.phone_dead_letters, migration 009; [] before it).
    nlohmann::json list_dead_letters(std::int64_t limit);
    // Closes a conflict, keeping the winner or restoring the loser's value
    // as a new change. Raises a permanent UpstreamError with the server's
    // reason when it cannot (no such conflict, already resolved, row gone).
    nlohmann::json resolve_conflict(std::int64_t id, bool keep_loser);

    // Re-reads both schemas (after the app migrated) and plans the
    // catch-ups of tables and columns that start syncing now.
    void refresh_mappings();
    // Tables whose rows are fetched again at the next pull: they (or some
    // of their columns) started syncing on a replica already following the
    // change log, which skipped their changes until then.
    const std::vector<std::string>& catch_ups() const { return catch_ups_; }
    const TableMapping& mapping(const std::string& table) const;
    const std::string& replica_id() const { return replica_.replica_id(); }
    std::string replica_name();

  private:
    // Every entry point starts here: when the app changed its schema (a
    // column or table added), the capture triggers and the mappings follow
    // before anything is pushed, pulled or compared. True when they did.
    bool follow_schema();
    // Compares each table's mapped columns with what was synced before
    // (meta mapped:<table>): catch-ups for what grew, local values of
    // newly mapped columns queued for the push.
    void plan_catch_ups();
    // Each planned catch-up: the table copied again from one snapshot and
    // applied like a pull (rows with local edits wait for the push), then
    // recorded as synced.
    PullStats run_catch_ups();
    void record_mapped(const TableMapping& m);
    struct PreparedPush;
    struct FetchedRows;
    PreparedPush prepare_push(const std::vector<OutboxEntry>& entries);
    // The batch after `after_seq`, prepared on the look-ahead thread (see
    // push_step); nothing when the outbox holds no more or reading it failed.
    std::optional<PreparedPush> prepare_ahead(std::int64_t after_seq);
    // One batch: `next` if the previous step left one, else read now. With
    // `look_ahead`, the batch after it is prepared while it is in Postgres
    // and left in `next`, when nothing this batch changes is in it.
    PushStats push_step(std::optional<PreparedPush>& next, bool look_ahead);
    // The batch in one Postgres transaction; refused for good, row by row.
    void send_batch(PreparedPush& batch, const std::string& name);
    // One Postgres transaction: the batch, the replica's last sequence.
    void send_push(pqxx::work& tx, PreparedPush& batch, const std::string& name, bool isolate_rows);
    void finish_push(const PreparedPush& batch);
    using KeySpan = std::span<const std::pair<std::string, std::string>>;  // table, uuid
    // Appends the rows' current state (or "gone") to `out`.
    void fetch_rows(pqxx::transaction_base& tx, KeySpan keys, FetchedRows& out);
    // `wait_for_disk`: for an apply that nothing would redo if a power cut
    // lost it (ApplyScope).
    PullStats apply_rows(const FetchedRows& rows, const std::string* cursor,
                         bool wait_for_disk = false);
    // Copies every table from one snapshot (no cursor yet, or the change log
    // was compacted past it), then follows the change log from there.
    // `resync`: rows this replica holds with an identity that the snapshot
    // lacks were deleted upstream, and go (RowApplier::remove_all_except).
    PullStats bootstrap(bool resync);
    // One table of the bootstrap, in pages; `seen` collects its UUIDs.
    PullStats copy_table(pqxx::transaction_base& tx, const TableMapping& m,
                         std::set<std::string>* seen);
    struct ChangesRead;
    // The change log after `cursor` and the rows it names, in one snapshot.
    ChangesRead read_changes(pqxx::transaction_base& tx, const ChangeLogCursor& cursor);
    PullStats refetch(const std::vector<std::pair<std::string, std::string>>& keys,
                      bool wait_for_disk = false);
    // One table's report: bucket digests compared, then the rows of the
    // buckets that differ; rows in `skip` left out.
    TableVerifyReport verify_table(const TableMapping& m, const std::set<std::string>& skip);
    // The hashes of the local rows whose UUID starts with one of `buckets`
    // (all of them: nullptr), rows in `skip` left out.
    std::map<std::string, std::string> local_row_hashes(const TableMapping& m,
                                                        const std::set<std::string>& skip,
                                                        const std::string* buckets);
    // Decides, for the rows of `t` that differ, what to push and what to
    // fetch: queues the pushes in the outbox and adds every row to `refetch`.
    void plan_repair(const TableMapping& m, TableVerifyReport& t,
                     std::vector<std::pair<std::string, std::string>>& refetch);
    // local_canonical_rows one row at a time, holding none of them: verify's
    // memory stays flat however large the table. `key` is the row's local key.
    using CanonicalRowVisitor = std::function<void(const std::string& uuid, const std::string& text,
                                                   const std::vector<sqlite::Value>& key)>;
    void for_each_local_canonical_row(const std::string& table, const CanonicalRowVisitor& visit);
    // UUIDs of the rows with changes in the outbox, per table.
    std::map<std::string, std::set<std::string>> pending_uuids();
    void fault(std::string_view point);

    Replica& replica_;
    Upstream& upstream_;
    SyncOptions options_;
    std::vector<TableMapping> mappings_;
    std::vector<std::string> catch_ups_;
    IdentityMap ids_;
    WritePacer pacer_;
    size_t apply_chunk_rows_ = 500;  // adapts to hold the lock ~WritePacer::kTargetHold
};

}  // namespace lestash
