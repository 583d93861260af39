// The local side: attaching to the app's lestash.db, keeping the daemon's own
// objects and capture triggers in step with the live schema. The tables the
// daemon keeps there each have an owner module beside this one: outbox.hpp,
// identity.hpp, meta.hpp, dead_letters.hpp, held_back.hpp, apply_scope.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/meta.hpp"
#include "lestash_sync/replica/outbox.hpp"
#include "lestash_sync/replica/table_spec.hpp"

namespace lestash {

struct AttachOptions {
    std::string path;
    std::vector<TableSpec> tables = default_table_specs();
    // How long the daemon's own statements wait for the app's locks.
    int busy_timeout_ms = 5000;
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
    Replica(const Replica&) = delete;
    Replica& operator=(const Replica&) = delete;

    sqlite::Connection& db() { return db_; }
    const std::string& path() const { return db_.path(); }
    const std::string& replica_id() const { return replica_id_; }
    // The synced tables the database has now, parents first. A configured
    // table the database does not have yet (an older Le Stash) is waiting:
    // it joins when the app creates it (see follow_schema_changes).
    const std::vector<const TableSpec*>& tables() const { return present_; }
    const std::vector<std::string>& waiting_tables() const { return waiting_; }
    // Tables of the database lestash-sync does not know (the app added them
    // after this build): not synced, reported once in the log and here.
    const std::vector<std::string>& unsynced_tables() const { return unsynced_; }
    const TableSpec& table(const std::string& name) const;
    // The synced columns of a table in the live schema (local key excluded).
    const std::vector<std::string>& synced_columns(const std::string& table) const;
    // All columns of the table in the live schema, in declaration order.
    const std::vector<std::string>& live_columns(const std::string& table) const;

    // Regenerates the capture triggers when PRAGMA schema_version shows the
    // app changed its schema (a waiting table that appeared is captured from
    // then on, its rows queued). Returns true when the schema changed.
    // Raises SchemaError on destructive drift (a synced column or table
    // removed).
    bool follow_schema_changes();
    // Whether the live schema is still the one last followed (one PRAGMA).
    bool schema_followed() { return schema_version() == schema_version_seen_; }

    // Queues, as an update of that column, every row of the table whose
    // value in one of `columns` is not the column's default: values written
    // before they were synced (a column the app just added, or one
    // Postgres just got).
    void queue_non_default_values(const TableSpec& spec, const std::vector<std::string>& columns);

    // The local changes waiting to be pushed.
    Outbox& outbox() { return outbox_; }

    std::optional<std::string> meta(const std::string& key) { return meta_.get(key); }
    void set_meta(const std::string& key, const std::string& value) { meta_.set(key, value); }
    // The name given in the config, else "<hostname>-<first 8 of the id>".
    std::string name();

  private:
    void install_daemon_objects();
    void ensure_replica_id();
    // In one transaction: each table's triggers and columns, then the
    // tables no longer synced forgotten.
    void sync_capture_triggers();
    // One table: checked against its spec and what was synced before, its
    // triggers made, its rows queued when it is new. False when it waits
    // (not in the database yet, or a table it points at waits).
    bool capture_table(const TableSpec& spec, const std::set<std::string>& present,
                       std::set<std::string>& wanted);
    // Tables no longer synced: their triggers dropped and their columns
    // forgotten, so syncing them again later starts with a fresh snapshot.
    void forget_unsynced_tables(const std::set<std::string>& wanted);
    // Tables nobody told us about: logged once (remembered in meta).
    void note_unknown_tables();
    void log_waiting_changes(const std::vector<std::string>& waiting);
    std::int64_t schema_version();

    std::vector<TableSpec> tables_;  // as configured; never resized (tables() points into it)
    std::vector<const TableSpec*> present_;
    std::vector<std::string> waiting_;
    std::vector<std::string> unsynced_;
    bool waiting_logged_ = false;
    sqlite::Connection db_;
    ReplicaMeta meta_{db_};
    Outbox outbox_{db_};
    std::string replica_id_;
    std::map<std::string, std::vector<std::string>> synced_columns_;
    std::map<std::string, std::vector<std::string>> live_columns_;
    std::int64_t schema_version_seen_ = -1;
};

}  // namespace lestash
