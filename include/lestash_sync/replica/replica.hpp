// The local side: attaching to the app's lestash.db, keeping the daemon's own
// objects and capture triggers in step with the live schema, and reading the
// outbox they fill.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace lestash {

struct AttachOptions {
    std::string path;
    std::vector<TableSpec> tables = default_table_specs();
    // How long the daemon's own statements wait for the app's locks.
    int busy_timeout_ms = 5000;
};

// One captured local change.
struct OutboxEntry {
    std::int64_t seq = 0;
    std::string table;
    char op = 'I';                         // 'I', 'U' or 'D'
    std::optional<std::int64_t> local_id;  // rowid-keyed tables
    std::string row_key;                   // link tables: JSON array of local key values
    std::optional<std::string> row_uuid;   // deletes: identity at delete time
    std::string link_uuids;                // link-table deletes: JSON array of parent UUIDs
    std::vector<std::string> changed;      // updates: changed columns
    std::string captured_at;
};

// Raises the same LocalDatabaseError the attach would when the database's
// directory does not exist (checked before taking the daemon's lock there).
void require_database_directory(const std::string& path);

// The version of the daemon's own objects this build creates and expects.
int daemon_objects_version();

class Replica {
  public:
    // Opens (or, when the file does not exist, creates with the Le Stash v11
    // schema) the database, installs or upgrades the daemon's objects and the
    // capture triggers. Raises LocalDatabaseError / SchemaError with the path
    // and what to do.
    explicit Replica(const AttachOptions& options);

    sqlite::Connection& db() { return db_; }
    const std::string& path() const { return db_.path(); }
    const std::string& replica_id() const { return replica_id_; }
    const std::vector<TableSpec>& tables() const { return tables_; }
    const TableSpec& table(const std::string& name) const;
    // The synced columns of a table in the live schema (local key excluded).
    const std::vector<std::string>& synced_columns(const std::string& table) const;
    // All columns of the table in the live schema, in declaration order.
    const std::vector<std::string>& live_columns(const std::string& table) const;

    // Regenerates the capture triggers when PRAGMA schema_version shows the
    // app changed its schema. Returns true when the triggers changed. Raises
    // SchemaError on destructive drift (a synced column or table removed).
    bool follow_schema_changes();

    std::vector<OutboxEntry> read_outbox(std::int64_t after_seq, int limit);
    std::int64_t outbox_depth();

    std::optional<std::string> meta(const std::string& key);
    // The name given in the config, else "<hostname>-<first 8 of the id>".
    std::string name();
    void set_meta(const std::string& key, const std::string& value);

  private:
    void install_daemon_objects();
    void ensure_replica_id();
    void sync_capture_triggers();
    std::int64_t schema_version();

    std::vector<TableSpec> tables_;
    sqlite::Connection db_;
    std::string replica_id_;
    std::map<std::string, std::vector<std::string>> synced_columns_;
    std::map<std::string, std::vector<std::string>> live_columns_;
    std::int64_t schema_version_seen_ = -1;
};

// Paces the engine's write transactions so the app is never starved.
// SQLite's busy handler polls instead of queueing (Python's sqlite3 retries
// after 1, 2, 5 ... 50, then every 100 ms), so a writer that takes the lock
// again right after releasing it can keep the app waiting until its 5 s
// timeout ends in "database is locked". Before a write transaction that
// follows closely on the previous one, the pacer leaves a gap as long as the
// previous one held the lock (1 to 110 ms): longer than the app's longest
// poll interval, so a waiting app always gets in within one engine
// transaction plus one gap. Writes that come later than that pay nothing.
class WritePacer {
  public:
    // Call before BEGIN: sleeps only when the last write ended too recently.
    void before_write();
    // Call after COMMIT (or ROLLBACK) with how long the lock was held.
    void after_write(std::chrono::steady_clock::duration held);
    // How long an engine write transaction should hold the lock at most.
    static constexpr std::chrono::milliseconds kTargetHold{500};

  private:
    std::chrono::steady_clock::time_point next_write_{};
};

// The engine's own write transaction: BEGIN IMMEDIATE with the apply flag
// set, so the capture triggers ignore what it writes. The flag row is removed
// before COMMIT, so no other connection ever sees it.
class ApplyScope {
  public:
    explicit ApplyScope(sqlite::Connection& db);
    void commit();

  private:
    sqlite::Connection& db_;
    sqlite::Transaction txn_;
};

}  // namespace lestash
