// Every statement on _lestash_sync_media, and the triggers on item_media
// that fill it (see media_queue.hpp).
#include "lestash_sync/media/media_queue.hpp"

#include "lestash_sync/replica/apply_scope.hpp"

namespace lestash {
namespace {

constexpr const char* kColumns =
    "path, state, origin, sha256, size, owned, attempts, last_error, next_attempt_at";
// The states with work left (the partial index _lestash_sync_media_work).
constexpr const char* kUnfinished =
    "state NOT IN ('uploaded', 'downloaded', 'present', 'different', 'invalid', 'too-large')";
constexpr const char* kTransfers =
    "state IN ('to-upload', 'missing', 'to-download', 'waiting', "
    "'failed')";
constexpr const char* kNamedPaths =
    "SELECT local_path FROM item_media WHERE typeof(local_path) = 'text'";

MediaEntry read_entry(const sqlite::Statement& st) {
    MediaEntry e;
    e.path = st.text(0);
    e.state = st.text(1);
    e.origin = st.text(2);
    if (!st.is_null(3))
        e.sha256 = st.text(3);
    if (!st.is_null(4))
        e.size = st.integer(4);
    e.owned = st.integer(5) != 0;
    e.attempts = st.integer(6);
    e.last_error = st.is_null(7) ? "" : st.text(7);
    e.next_attempt_at = st.real(8);
    return e;
}

std::vector<MediaEntry> read_all(sqlite::Statement& st) {
    std::vector<MediaEntry> out;
    while (st.step()) out.push_back(read_entry(st));
    return out;
}

// Queues `path_sql` (NEW.local_path) unless it is queued already. No
// conflict can arise, so the app statement's own ON CONFLICT policy (which
// SQLite applies to trigger bodies too) never matters.
std::string queue_path_sql(const std::string& path_sql) {
    return "INSERT INTO _lestash_sync_media (path, origin) SELECT " + path_sql + ", CASE WHEN " +
           ApplyScope::not_applying_sql() + " THEN 'here' ELSE 'elsewhere' END WHERE typeof(" +
           path_sql +
           ") = 'text' AND NOT EXISTS (SELECT 1 FROM _lestash_sync_media WHERE path = " + path_sql +
           ");";
}

std::string recheck_sql(const std::string& path_sql) {
    return "UPDATE _lestash_sync_media SET recheck = 1 WHERE path = " + path_sql + ";";
}

struct TriggerText {
    const char* name;
    std::string sql;
};

std::vector<TriggerText> media_triggers() {
    return {
        {"_lestash_sync_media_on_insert",
         "CREATE TRIGGER \"_lestash_sync_media_on_insert\" AFTER INSERT ON \"item_media\"\n"
         "BEGIN\n    " +
             queue_path_sql("NEW.\"local_path\"") + "\nEND"},
        {"_lestash_sync_media_on_update",
         "CREATE TRIGGER \"_lestash_sync_media_on_update\" AFTER UPDATE OF \"local_path\" ON "
         "\"item_media\" WHEN OLD.\"local_path\" IS NOT NEW.\"local_path\"\nBEGIN\n    " +
             queue_path_sql("NEW.\"local_path\"") + "\n    " + recheck_sql("OLD.\"local_path\"") +
             "\nEND"},
        {"_lestash_sync_media_on_delete",
         "CREATE TRIGGER \"_lestash_sync_media_on_delete\" AFTER DELETE ON \"item_media\"\n"
         "BEGIN\n    " +
             recheck_sql("OLD.\"local_path\"") + "\nEND"},
    };
}

}  // namespace

bool MediaQueue::item_media_exists() {
    return db_.query_int(
               "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
               "'item_media'") > 0;
}

void MediaQueue::install_and_reconcile() {
    sqlite::Transaction txn(db_);
    for (const auto& t : media_triggers()) {
        sqlite::Statement existing(
            db_, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?");
        existing.bind(1, t.name);
        if (existing.step() && existing.text(0) == t.sql)
            continue;
        db_.exec(std::string("DROP TRIGGER IF EXISTS \"") + t.name + "\"");
        db_.exec(t.sql);
    }
    db_.exec(
        std::string("INSERT INTO _lestash_sync_media (path) SELECT DISTINCT local_path FROM "
                    "item_media WHERE typeof(local_path) = 'text' AND local_path NOT IN "
                    "(SELECT path FROM _lestash_sync_media)"));
    db_.exec(std::string("UPDATE _lestash_sync_media SET recheck = 1 WHERE recheck = 0 AND path "
                         "NOT IN (") +
             kNamedPaths + ")");
    txn.commit();
}

std::vector<MediaEntry> MediaQueue::unreferenced(int limit) {
    if (db_.query_int("SELECT EXISTS (SELECT 1 FROM _lestash_sync_media WHERE recheck = 1)") == 0)
        return {};
    db_.exec(std::string("UPDATE _lestash_sync_media SET recheck = 0 WHERE recheck = 1 AND path "
                         "IN (") +
             kNamedPaths + ")");
    sqlite::Statement st(db_,
                         std::string("SELECT ") + kColumns +
                             " FROM _lestash_sync_media WHERE recheck = 1 ORDER BY path LIMIT ?");
    st.bind(1, std::int64_t{limit});
    return read_all(st);
}

std::vector<MediaEntry> MediaQueue::in_state(const std::string& state, int limit) {
    sqlite::Statement st(db_,
                         std::string("SELECT ") + kColumns +
                             " FROM _lestash_sync_media WHERE state = ? ORDER BY path LIMIT ?");
    st.bind(1, state).bind(2, std::int64_t{limit});
    return read_all(st);
}

std::optional<MediaEntry> MediaQueue::get(const std::string& path) {
    sqlite::Statement st(
        db_, std::string("SELECT ") + kColumns + " FROM _lestash_sync_media WHERE path = ?");
    st.bind(1, path);
    if (!st.step())
        return std::nullopt;
    return read_entry(st);
}

std::optional<MediaEntry> MediaQueue::next_due(double now) {
    sqlite::Statement st(db_, std::string("SELECT ") + kColumns +
                                  " FROM _lestash_sync_media WHERE " + kUnfinished + " AND " +
                                  kTransfers +
                                  " AND next_attempt_at <= ? ORDER BY CASE WHEN origin = 'here' "
                                  "THEN 0 ELSE 1 END, next_attempt_at, path LIMIT 1");
    st.bind(1, sqlite::Value{now});
    if (!st.step())
        return std::nullopt;
    return read_entry(st);
}

std::optional<double> MediaQueue::next_retry(double now) {
    sqlite::Statement st(db_, std::string("SELECT min(next_attempt_at) FROM _lestash_sync_media "
                                          "WHERE ") +
                                  kUnfinished + " AND " + kTransfers + " AND next_attempt_at > ?");
    st.bind(1, sqlite::Value{now});
    if (!st.step() || st.is_null(0))
        return std::nullopt;
    return st.real(0);
}

bool MediaQueue::has_work(double now) {
    sqlite::Statement st(
        db_, std::string("SELECT EXISTS (SELECT 1 FROM _lestash_sync_media WHERE recheck = 1) OR "
                         "EXISTS (SELECT 1 FROM _lestash_sync_media WHERE ") +
                 kUnfinished + " AND (state = 'new' OR (" + kTransfers +
                 " AND next_attempt_at <= ?)))");
    st.bind(1, sqlite::Value{now});
    st.step();
    return st.integer(0) != 0;
}

void MediaQueue::save(const MediaEntry& e) {
    sqlite::Statement st(db_,
                         "UPDATE _lestash_sync_media SET state = ?, origin = ?, sha256 = ?, "
                         "size = ?, owned = ?, attempts = ?, last_error = ?, next_attempt_at = ? "
                         "WHERE path = ?");
    st.bind(1, e.state).bind(2, e.origin);
    e.sha256 ? st.bind(3, *e.sha256) : st.bind_null(3);
    e.size ? st.bind(4, *e.size) : st.bind_null(4);
    st.bind(5, std::int64_t{e.owned ? 1 : 0}).bind(6, e.attempts);
    e.last_error.empty() ? st.bind_null(7) : st.bind(7, e.last_error);
    st.bind(8, sqlite::Value{e.next_attempt_at});
    st.bind(9, e.path).run();
}

void MediaQueue::remove(const std::string& path) {
    sqlite::Statement st(db_, "DELETE FROM _lestash_sync_media WHERE path = ?");
    st.bind(1, path).run();
}

void MediaQueue::retry_now() {
    db_.exec(std::string("UPDATE _lestash_sync_media SET next_attempt_at = 0 WHERE ") +
             kUnfinished + " AND " + kTransfers + " AND next_attempt_at > 0");
}

void MediaQueue::retry_waiting() {
    db_.exec(std::string("UPDATE _lestash_sync_media SET next_attempt_at = 0 WHERE ") +
             kUnfinished + " AND state = 'waiting' AND next_attempt_at > 0");
}

void MediaQueue::requeue_fitting(std::int64_t max_bytes) {
    sqlite::Statement st(db_,
                         "UPDATE _lestash_sync_media SET state = 'to-upload', next_attempt_at = 0 "
                         "WHERE state = 'too-large' AND size <= ?");
    st.bind(1, max_bytes).run();
}

std::map<std::string, std::int64_t> MediaQueue::counts() {
    sqlite::Statement st(db_, "SELECT state, count(*) FROM _lestash_sync_media GROUP BY state");
    std::map<std::string, std::int64_t> out;
    while (st.step()) out[st.text(0)] = st.integer(1);
    return out;
}

std::vector<std::string> MediaQueue::referenced_paths() {
    sqlite::Statement st(
        db_, std::string("SELECT DISTINCT local_path FROM (") + kNamedPaths + ") ORDER BY 1");
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.text(0));
    return out;
}

}  // namespace lestash
