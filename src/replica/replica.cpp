// Attaching to the app's lestash.db: opening it safely, creating a new one
// when there is none, installing the daemon's objects and keeping the capture
// triggers in step with the live schema.
#include "lestash_sync/replica/replica.hpp"

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include <spdlog/spdlog.h>

#include "lestash_sync/common/embedded_sql.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/replica/capture.hpp"

namespace lestash {
namespace fs = std::filesystem;
using sqlite::quote_identifier;
using sqlite::quote_literal;

namespace {

std::string_view sql_file(std::string_view name) {
    for (const auto& f : embedded_sql())
        if (f.name == name)
            return f.text;
    throw LocalDatabaseError("internal: SQL file " + std::string(name) + " is not built in");
}

std::vector<EmbeddedSql> daemon_migrations() {
    std::vector<EmbeddedSql> out;
    for (const auto& f : embedded_sql_under("sqlite/daemon-")) out.push_back(f);
    return out;
}

// Builds a new Le Stash v11 database beside `path` and renames it into place,
// so a crash never leaves a half-created file where the app looks.
void create_lestash_database(const std::string& path) {
    const std::string tmp = path + ".creating-" + std::to_string(::getpid());
    try {
        sqlite::Connection db(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        db.exec(sql_file("sqlite/lestash-v11.sql"));
    } catch (const LocalDatabaseError& e) {
        std::error_code ignored;
        fs::remove(tmp, ignored);
        throw LocalDatabaseError("cannot create " + path + ": " + e.what());
    }
    fs::rename(tmp, path);
}

sqlite::Connection open_database(const std::string& path, int busy_timeout_ms) {
    const fs::path p(path);
    require_database_directory(path);
    if (fs::is_directory(p))
        throw LocalDatabaseError("cannot open " + path +
                                 ": it is a directory — point --db at the lestash.db file");
    if (!fs::exists(p))
        create_lestash_database(path);

    sqlite::Connection db(path, SQLITE_OPEN_READWRITE);
    // Before the first read: a reader can meet a lock too (another
    // connection recovering the WAL after a crash, an exclusive checkpoint).
    // Found by the soak: a daemon restarted while the app held a write
    // transaction exited with "database is locked".
    sqlite3_busy_timeout(db.handle(), busy_timeout_ms);
    if (sqlite3_db_readonly(db.handle(), "main") == 1)
        throw LocalDatabaseError("cannot attach to " + path +
                                 ": the file is read-only, and the daemon needs to write its "
                                 "outbox into it — check the permissions of the file and of "
                                 "its directory (for the -wal file)");
    try {
        db.query_int("SELECT count(*) FROM sqlite_master");
    } catch (const LocalDatabaseError&) {
        if ((sqlite3_extended_errcode(db.handle()) & 0xff) == SQLITE_BUSY)
            throw LocalDatabaseError("cannot open " + path +
                                     ": another connection kept it locked for more than " +
                                     std::to_string(busy_timeout_ms / 1000) +
                                     " s — retry when the app's long write (an import?) is over");
        throw LocalDatabaseError("cannot open " + path + ": " + sqlite3_errmsg(db.handle()) +
                                 " — is the path right? It should be Le Stash's lestash.db");
    }
    if (db.query_int(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'items'") == 0)
        throw SchemaError("cannot attach to " + path +
                          ": it has no items table, so it is not a Le Stash database — point "
                          "--db at lestash.db (default ~/.config/lestash/lestash.db)");
    return db;
}

struct ColumnInfo {
    std::string name;
    std::string type;
    std::optional<std::string> default_sql;
    int pk = 0;
};

std::vector<ColumnInfo> table_info(sqlite::Connection& db, const std::string& table) {
    sqlite::Statement st(db, "SELECT name, type, dflt_value, pk FROM pragma_table_info(?)");
    st.bind(1, table);
    std::vector<ColumnInfo> out;
    while (st.step())
        out.push_back({st.text(0), st.text(1),
                       st.is_null(2) ? std::nullopt : std::optional<std::string>(st.text(2)),
                       static_cast<int>(st.integer(3))});
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// Checks that the live table can be synced under its spec; returns the synced
// columns (all but the local key when keyed by rowid).
std::vector<std::string> validate_table(const std::string& path, const TableSpec& spec,
                                        const std::vector<ColumnInfo>& cols) {
    const std::string where = "table " + spec.name + " in " + path;
    std::vector<std::string> names;
    for (const auto& c : cols) {
        if (c.name.find(',') != std::string::npos)
            throw SchemaError("cannot sync " + where + ": column name \"" + c.name +
                              "\" contains a comma, which the outbox cannot record");
        names.push_back(c.name);
    }
    if (spec.keyed_by_rowid()) {
        const auto it = std::find_if(cols.begin(), cols.end(),
                                     [&](const auto& c) { return c.name == spec.local_key[0]; });
        std::string type = it == cols.end() ? "" : it->type;
        std::transform(type.begin(), type.end(), type.begin(), ::toupper);
        if (it == cols.end() || it->pk != 1 || type != "INTEGER")
            throw SchemaError("cannot sync " + where + ": expected \"" + spec.local_key[0] +
                              " INTEGER PRIMARY KEY\", as Le Stash creates it");
    }
    for (const auto& k : spec.local_key)
        if (!contains(names, k))
            throw SchemaError("cannot sync " + where + ": key column " + k + " is missing");
    for (const auto& k : spec.natural_key)
        if (!contains(names, k))
            throw SchemaError("cannot sync " + where + ": natural key column " + k + " is missing");
    std::vector<std::string> synced;
    for (const auto& n : names)
        if (!(spec.keyed_by_rowid() && n == spec.local_key[0]))
            synced.push_back(n);
    return synced;
}

}  // namespace

void require_database_directory(const std::string& path) {
    const fs::path p(path);
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir))
        throw LocalDatabaseError("cannot open " + path + ": directory " + dir.string() +
                                 " does not exist — create it (mkdir -p " + dir.string() +
                                 ") or point --db at your lestash.db");
}

std::string Replica::name() {
    if (auto name = meta("replica_name"))
        return *name;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::string(host[0] ? host : "replica") + "-" + replica_id().substr(0, 8);
}

int daemon_objects_version() {
    return static_cast<int>(daemon_migrations().size());
}

Replica::Replica(const AttachOptions& options)
    : tables_(options.tables), db_(open_database(options.path, options.busy_timeout_ms)) {
    db_.exec("PRAGMA journal_mode = WAL");
    // What the engine's commits wait for unless they say otherwise
    // (sqlite::DiskDeferredTransaction), whatever this SQLite's build defaults to.
    db_.exec("PRAGMA synchronous = FULL");
    db_.exec("PRAGMA foreign_keys = ON");
    install_daemon_objects();
    ensure_replica_id();
    sync_capture_triggers();
}

const TableSpec& Replica::table(const std::string& name) const {
    for (const auto& t : tables_)
        if (t.name == name)
            return t;
    throw SchemaError("table " + name + " is not synced");
}

const std::vector<std::string>& Replica::synced_columns(const std::string& table) const {
    return synced_columns_.at(table);
}
const std::vector<std::string>& Replica::live_columns(const std::string& table) const {
    return live_columns_.at(table);
}

std::int64_t Replica::schema_version() {
    return db_.query_int("PRAGMA schema_version");
}

void Replica::install_daemon_objects() {
    sqlite::Transaction txn(db_);
    const int version = meta_.objects_version();
    const auto migrations = daemon_migrations();
    if (version > static_cast<int>(migrations.size()))
        throw LocalDatabaseError(
            path() + " was set up by a newer lestash-sync (its objects are at version " +
            std::to_string(version) + ", this build knows " + std::to_string(migrations.size()) +
            ") — upgrade lestash-sync");
    for (size_t i = static_cast<size_t>(version); i < migrations.size(); ++i)
        db_.exec(migrations[i].text);
    if (version != static_cast<int>(migrations.size()))
        set_meta("objects_version", std::to_string(migrations.size()));
    txn.commit();
}

void Replica::ensure_replica_id() {
    if (auto id = meta("replica_id")) {
        replica_id_ = *id;
        return;
    }
    replica_id_ = random_uuid();
    set_meta("replica_id", replica_id_);
}

namespace {

// Creates the table's capture triggers whose SQL changed (or that are
// missing), and notes their names in `wanted`.
void install_triggers(sqlite::Connection& db, const TableSpec& spec,
                      const std::vector<std::string>& synced, std::set<std::string>& wanted) {
    const auto names = capture_trigger_names(spec);
    const auto sql = capture_trigger_sql(spec, synced);
    for (size_t i = 0; i < names.size(); ++i) {
        wanted.insert(names[i]);
        sqlite::Statement existing(db,
                                   "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND "
                                   "name = ?");
        existing.bind(1, names[i]);
        if (existing.step() && existing.text(0) == sql[i])
            continue;
        db.exec("DROP TRIGGER IF EXISTS " + quote_identifier(names[i]));
        db.exec(sql[i]);
    }
}

// Rows that hold a non-default value in one of `columns` are sent as
// updates of that column.
void queue_non_default(Outbox& outbox, const TableSpec& spec, const std::vector<ColumnInfo>& cols,
                       const std::vector<std::string>& columns) {
    for (const auto& c : cols) {
        if (!contains(columns, c.name))
            continue;
        outbox.enqueue_rows(
            spec, 'U', quote_literal(c.name),
            quote_identifier(c.name) + " IS NOT (" + c.default_sql.value_or("NULL") + ")");
    }
}

// Tables lestash-sync knows, synced or not: the user's tables (also when
// left out of [sync] tables), the ones that stay on the device, the
// daemon's own, SQLite's, and the shadow tables of the app's search index.
bool known_table(const std::string& name) {
    const auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
    const auto defaults = default_table_names();
    return contains(defaults, name) || stays_on_device(name) || starts(kObjectPrefix) ||
           starts("sqlite_") || name == "items_fts" || starts("items_fts_");
}

}  // namespace

void Replica::sync_capture_triggers() {
    sqlite::Transaction txn(db_);
    std::set<std::string> wanted, present_names;
    std::vector<const TableSpec*> present;
    std::vector<std::string> waiting;
    for (const auto& spec : tables_) {
        if (capture_table(spec, present_names, wanted)) {
            present_names.insert(spec.name);
            present.push_back(&spec);
        } else {
            waiting.push_back(spec.name);
        }
    }
    forget_unsynced_tables(wanted);
    note_unknown_tables();
    schema_version_seen_ = schema_version();
    txn.commit();
    log_waiting_changes(waiting);
    present_ = std::move(present);
    waiting_ = std::move(waiting);
}

void Replica::log_waiting_changes(const std::vector<std::string>& waiting) {
    for (const auto& name : waiting)
        if (!waiting_logged_ || !contains(waiting_, name))
            spdlog::info(
                "table {} is not in {} yet (an older Le Stash; it creates the table when it "
                "upgrades the database): it will sync once it appears",
                name, path());
    for (const auto& name : waiting_)
        if (!contains(waiting, name))
            spdlog::info("table {} appeared in {}: syncing it", name, path());
    waiting_logged_ = true;
}

void Replica::note_unknown_tables() {
    sqlite::Statement st(db_, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    std::vector<std::string> unknown;
    while (st.step())
        if (!known_table(st.text(0)))
            unknown.push_back(st.text(0));
    for (const auto& name : unknown) {
        if (meta("unsynced:" + name))
            continue;  // said once already, before a restart maybe
        spdlog::warn(
            "table {} in {} is not synced: lestash-sync does not know it, so it stays on this "
            "device (a newer lestash-sync may know it)",
            name, path());
        set_meta("unsynced:" + name, "1");
    }
    unsynced_ = std::move(unknown);
}

void Replica::queue_non_default_values(const TableSpec& spec,
                                       const std::vector<std::string>& columns) {
    queue_non_default(outbox_, spec, table_info(db_, spec.name), columns);
}

bool Replica::capture_table(const TableSpec& spec, const std::set<std::string>& present,
                            std::set<std::string>& wanted) {
    const auto cols = table_info(db_, spec.name);
    const auto previous_text = meta("columns:" + spec.name);
    if (cols.empty()) {
        if (previous_text)
            throw SchemaError("sync stopped for " + path() + ": table " + spec.name +
                              " was removed from the database after it was synced; its data "
                              "would be lost. Restore it (or the Le Stash version that had it) "
                              "and restart lestash-syncd, or leave it out of [sync] tables");
        return false;  // waits for the app to create it
    }
    for (const auto& fk : spec.foreign_keys)
        if (fk.parent_table != spec.name && !present.count(fk.parent_table))
            return false;  // waits for the table it points at
    const auto synced = validate_table(path(), spec, cols);
    std::vector<std::string> previous;
    if (previous_text)
        previous = nlohmann::json::parse(*previous_text).get<std::vector<std::string>>();
    for (const auto& c : previous)
        if (!contains(synced, c))
            throw SchemaError("sync stopped for " + path() + ": column " + spec.name + "." + c +
                              " was removed from the database after it was synced; its "
                              "data would be lost. Restore the column (or the Le Stash "
                              "version that had it) and restart lestash-syncd");
    install_triggers(db_, spec, synced, wanted);
    if (!previous_text) {  // first capture of this table: its rows are local changes too
        outbox_.enqueue_rows(spec, 'I', "NULL", "");
    } else {
        // Columns the app just added: values the migration set, or that
        // were written before the triggers caught up.
        std::vector<std::string> added;
        for (const auto& c : synced)
            if (!contains(previous, c))
                added.push_back(c);
        queue_non_default(outbox_, spec, cols, added);
    }
    set_meta("columns:" + spec.name, nlohmann::json(synced).dump());
    synced_columns_[spec.name] = synced;
    auto& live = live_columns_[spec.name];
    live.clear();
    for (const auto& c : cols) live.push_back(c.name);
    return true;
}

void Replica::forget_unsynced_tables(const std::set<std::string>& wanted) {
    // Only capture triggers, of tables synced before: other rooms keep
    // triggers of their own under the prefix (media's on item_media).
    for (const auto& key : meta_.keys_with_prefix("columns:")) {
        const std::string table = key.substr(8);
        if (std::any_of(tables_.begin(), tables_.end(),
                        [&](const auto& s) { return s.name == table; }))
            continue;
        for (const auto& name : capture_trigger_names(table))
            if (!wanted.count(name))
                db_.exec("DROP TRIGGER IF EXISTS " + quote_identifier(name));
        meta_.erase(key);
    }
}

bool Replica::follow_schema_changes() {
    if (schema_version() == schema_version_seen_)
        return false;
    const auto before = schema_version_seen_;
    sync_capture_triggers();
    return schema_version_seen_ != before;
}

}  // namespace lestash
