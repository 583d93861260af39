// The Le Stash CLI's write patterns, replayed in C++ for tests.
#include "app_writer.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "lestash_sync/common/sha256.hpp"

namespace lestash::test {

namespace {
sqlite::Value opt(const std::optional<std::string>& v) {
    return v ? sqlite::Value{*v} : sqlite::Value{};
}
sqlite::Value opt(const std::optional<std::int64_t>& v) {
    return v ? sqlite::Value{*v} : sqlite::Value{};
}
}  // namespace

AppWriter::AppWriter(const std::string& path) : db_(path, SQLITE_OPEN_READWRITE) {
    sqlite3_busy_timeout(db_.handle(), 5000);
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA foreign_keys = ON");
}

bool AppWriter::has_parent_id() {
    return db_.query_int(
               "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'parent_id'") > 0;
}

std::int64_t AppWriter::upsert_item(const ItemFields& item) {
    const bool parent = has_parent_id();
    // As the CLI does: the read runs on its own, before the transaction.
    const std::int64_t max_history = db_.query_int("SELECT coalesce(max(id), 0) FROM item_history");
    ImplicitTransaction txn(db_);
    const std::string sql =
        std::string(
            "INSERT INTO items (source_type, source_id, url, title, content, author, "
            "created_at, is_own_content, metadata") +
        (parent ? ", parent_id" : "") + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?" +
        (parent ? ", ?" : "") +
        ") ON CONFLICT(source_type, source_id) DO UPDATE SET title = excluded.title, content = "
        "excluded.content, author = excluded.author, metadata = excluded.metadata" +
        (parent ? ", parent_id = excluded.parent_id" : "") +
        " WHERE items.title IS NOT excluded.title OR items.content IS NOT excluded.content OR "
        "items.author IS NOT excluded.author OR items.metadata IS NOT excluded.metadata" +
        (parent ? " OR items.parent_id IS NOT excluded.parent_id" : "");
    sqlite::Statement st(db_, sql);
    st.bind_all(sqlite::Value{item.source_type}, opt(item.source_id), opt(item.url),
                opt(item.title), sqlite::Value{item.content}, opt(item.author),
                opt(item.created_at), sqlite::Value{item.is_own_content}, opt(item.metadata));
    if (parent)
        st.bind(10, opt(item.parent_id));
    txn.begin();
    st.run();
    std::int64_t item_id = db_.last_insert_rowid();
    if (item.source_id) {
        sqlite::Statement id(db_, "SELECT id FROM items WHERE source_type = ? AND source_id = ?");
        id.bind_all(item.source_type, *item.source_id);
        if (id.step())
            item_id = id.integer(0);
    }
    sqlite::Statement retag(db_, "UPDATE item_history SET change_reason = 'sync' WHERE id > ?");
    retag.bind(1, max_history).run();
    txn.commit();
    return item_id;
}

namespace {
constexpr const char* insert_item_sql =
    "INSERT INTO items (source_type, source_id, url, title, content, author, created_at, "
    "is_own_content, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

void bind_item(sqlite::Statement& st, const ItemFields& item) {
    st.bind_all(sqlite::Value{item.source_type}, opt(item.source_id), opt(item.url),
                opt(item.title), sqlite::Value{item.content}, opt(item.author),
                opt(item.created_at), sqlite::Value{item.is_own_content}, opt(item.metadata));
}
}  // namespace

ImplicitTransaction::~ImplicitTransaction() {
    if (open_)
        sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void ImplicitTransaction::begin() {
    if (open_)
        return;
    db_.exec("BEGIN");
    open_ = true;
}

void ImplicitTransaction::commit() {
    if (!open_)
        return;
    db_.exec("COMMIT");
    open_ = false;
}

std::int64_t AppWriter::insert_item(const ItemFields& item) {
    sqlite::Statement st(db_, insert_item_sql);
    bind_item(st, item);
    st.run();
    return db_.last_insert_rowid();
}

void AppWriter::insert_items(const std::vector<ItemFields>& items,
                             const std::function<void()>& before_commit) {
    ImplicitTransaction txn(db_);
    sqlite::Statement st(db_, insert_item_sql);
    for (const auto& item : items) {
        bind_item(st, item);
        txn.begin();
        st.run();
    }
    if (before_commit)
        before_commit();
    txn.commit();
}

void AppWriter::update_content(std::int64_t item_id, const std::string& content) {
    sqlite::Statement st(db_, "UPDATE items SET content = ? WHERE id = ?");
    st.bind_all(content, item_id).run();
}

void AppWriter::delete_item(std::int64_t item_id) {
    sqlite::Statement st(db_, "DELETE FROM items WHERE id = ?");
    st.bind(1, item_id).run();
}

void AppWriter::add_tag(std::int64_t item_id, const std::string& tag) {
    ImplicitTransaction txn(db_);
    sqlite::Statement ins(db_, "INSERT OR IGNORE INTO tags (name) VALUES (?)");
    txn.begin();
    ins.bind(1, tag).run();
    sqlite::Statement link(db_,
                           "INSERT OR IGNORE INTO item_tags (item_id, tag_id) SELECT ?, id FROM "
                           "tags WHERE name = ?");
    link.bind_all(item_id, tag).run();
    txn.commit();
}

void AppWriter::remove_tag(std::int64_t item_id, const std::string& tag) {
    sqlite::Statement st(db_,
                         "DELETE FROM item_tags WHERE item_id = ? AND tag_id = (SELECT id FROM "
                         "tags WHERE name = ?)");
    st.bind_all(item_id, tag).run();
}

void AppWriter::upsert_source(const std::string& source_type, bool enabled,
                              const std::optional<std::string>& last_sync) {
    sqlite::Statement st(db_,
                         "INSERT INTO sources (source_type, enabled, last_sync) VALUES (?, ?, ?) "
                         "ON CONFLICT(source_type) DO UPDATE SET enabled = excluded.enabled, "
                         "last_sync = excluded.last_sync");
    st.bind_all(sqlite::Value{source_type}, sqlite::Value{std::int64_t{enabled ? 1 : 0}},
                opt(last_sync))
        .run();
}

std::string AppWriter::save_media(std::int64_t item_id, const std::string& bytes,
                                  const std::string& ext, bool write_file) {
    const std::string relative =
        std::to_string(item_id) + "/" + sha256_hex(bytes).substr(0, 12) + ext;
    if (write_file) {
        const auto target = std::filesystem::path(db_.path()).parent_path() / "media" / relative;
        std::filesystem::create_directories(target.parent_path());
        std::ofstream(target, std::ios::binary)
            .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    add_media_row(item_id, ext == ".pdf" ? "pdf" : "image", std::nullopt, relative,
                  ext == ".pdf" ? "application/pdf" : "image/jpeg");
    return relative;
}

std::int64_t AppWriter::add_media_row(std::int64_t item_id, const std::string& media_type,
                                      const std::optional<std::string>& url,
                                      const std::optional<std::string>& local_path,
                                      const std::optional<std::string>& mime_type) {
    sqlite::Statement st(db_,
                         "INSERT INTO item_media (item_id, media_type, url, local_path, "
                         "mime_type) SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM "
                         "item_media WHERE item_id = ?1 AND media_type = ?2 AND url IS ?3 AND "
                         "local_path IS ?4)");
    st.bind_all(sqlite::Value{item_id}, sqlite::Value{media_type}, opt(url), opt(local_path),
                opt(mime_type))
        .run();
    return db_.changes() ? db_.last_insert_rowid() : 0;
}

void AppWriter::delete_media_row(std::int64_t media_id) {
    sqlite::Statement st(db_, "DELETE FROM item_media WHERE id = ?");
    st.bind(1, media_id).run();
}

std::int64_t AppWriter::start_sync_log(const std::string& source_type) {
    sqlite::Statement st(db_,
                         "INSERT INTO sync_log (source_type, started_at, status) VALUES (?, "
                         "datetime('now'), 'running')");
    st.bind(1, source_type).run();
    return db_.last_insert_rowid();
}

void AppWriter::finish_sync_log(std::int64_t id, const std::string& status, int added, int updated,
                                const std::optional<std::string>& error) {
    sqlite::Statement st(db_,
                         "UPDATE sync_log SET completed_at = datetime('now'), status = ?, "
                         "items_added = ?, items_updated = ?, error_message = ? WHERE id = ?");
    st.bind_all(sqlite::Value{status}, sqlite::Value{std::int64_t{added}},
                sqlite::Value{std::int64_t{updated}}, opt(error), sqlite::Value{id})
        .run();
}

std::int64_t AppWriter::create_collection(const std::string& name,
                                          const std::optional<std::string>& description) {
    sqlite::Statement st(db_, "INSERT INTO collections (name, description) VALUES (?, ?)");
    st.bind_all(sqlite::Value{name}, opt(description)).run();
    return db_.last_insert_rowid();
}

void AppWriter::rename_collection(std::int64_t id, const std::string& name,
                                  const std::optional<std::string>& description) {
    sqlite::Statement st(db_,
                         "UPDATE collections SET name = ?, description = ?, updated_at = "
                         "CURRENT_TIMESTAMP WHERE id = ?");
    st.bind_all(sqlite::Value{name}, opt(description), sqlite::Value{id}).run();
}

void AppWriter::delete_collection(std::int64_t id) {
    sqlite::Statement st(db_, "DELETE FROM collections WHERE id = ?");
    st.bind(1, id).run();
}

namespace {
void touch_collection(sqlite::Connection& db, std::int64_t id) {
    sqlite::Statement st(db, "UPDATE collections SET updated_at = CURRENT_TIMESTAMP WHERE id = ?");
    st.bind(1, id).run();
}
}  // namespace

void AppWriter::add_to_collection(std::int64_t collection_id, std::int64_t item_id,
                                  const std::optional<std::string>& note) {
    ImplicitTransaction txn(db_);
    sqlite::Statement st(
        db_,
        "INSERT OR IGNORE INTO collection_items (collection_id, item_id, note) VALUES (?, ?, ?)");
    txn.begin();
    st.bind_all(sqlite::Value{collection_id}, sqlite::Value{item_id}, opt(note)).run();
    touch_collection(db_, collection_id);
    txn.commit();
}

void AppWriter::remove_from_collection(std::int64_t collection_id, std::int64_t item_id) {
    ImplicitTransaction txn(db_);
    sqlite::Statement st(db_,
                         "DELETE FROM collection_items WHERE collection_id = ? AND item_id = ?");
    txn.begin();
    st.bind_all(collection_id, item_id).run();
    touch_collection(db_, collection_id);
    txn.commit();
}

std::optional<std::int64_t> AppWriter::add_media(std::int64_t item_id,
                                                 const std::string& media_type,
                                                 const std::optional<std::string>& url,
                                                 const std::optional<std::string>& local_path) {
    // As Python's sqlite3 does: the check runs on its own, the insert in
    // an implicit transaction of its own (a read then a write in one
    // deferred transaction would fail on a stale snapshot, not wait).
    sqlite::Statement dup(db_,
                          "SELECT 1 FROM item_media WHERE item_id = ? AND media_type = ? AND "
                          "coalesce(url, '') = coalesce(?, '') AND coalesce(local_path, '') = "
                          "coalesce(?, '')");
    dup.bind_all(sqlite::Value{item_id}, sqlite::Value{media_type}, opt(url), opt(local_path));
    if (dup.step())
        return std::nullopt;
    dup.reset();
    sqlite::Statement st(db_,
                         "INSERT INTO item_media (item_id, media_type, url, local_path, "
                         "mime_type, position) VALUES (?, ?, ?, ?, ?, (SELECT count(*) FROM "
                         "item_media WHERE item_id = ?1))");
    st.bind_all(sqlite::Value{item_id}, sqlite::Value{media_type}, opt(url), opt(local_path),
                sqlite::Value{media_type == "image" ? std::string("image/png")
                                                    : std::string("application/pdf")})
        .run();
    return db_.last_insert_rowid();
}

void AppWriter::delete_media(std::int64_t id) {
    sqlite::Statement st(db_, "DELETE FROM item_media WHERE id = ?");
    st.bind(1, id).run();
}

std::int64_t AppWriter::record_syndication(std::int64_t item_id, const std::string& target,
                                           const std::string& target_url,
                                           const std::optional<std::string>& response_body) {
    sqlite::Statement st(db_,
                         "INSERT INTO syndications (item_id, target, target_url, request_body, "
                         "response_body) VALUES (?, ?, ?, '{}', ?)");
    st.bind_all(sqlite::Value{item_id}, sqlite::Value{target}, sqlite::Value{target_url},
                opt(response_body))
        .run();
    return db_.last_insert_rowid();
}

void AppWriter::upsert_profile(const std::string& urn,
                               const std::optional<std::string>& display_name) {
    sqlite::Statement st(db_,
                         "INSERT INTO person_profiles (urn, display_name, profile_url) VALUES "
                         "(?1, ?2, 'https://www.linkedin.com/in/' || ?1) ON CONFLICT(urn) DO "
                         "UPDATE SET display_name = excluded.display_name, updated_at = "
                         "CURRENT_TIMESTAMP WHERE person_profiles.display_name IS NOT "
                         "excluded.display_name");
    st.bind_all(sqlite::Value{urn}, opt(display_name)).run();
}

void AppWriter::delete_profile(const std::string& urn) {
    sqlite::Statement st(db_, "DELETE FROM person_profiles WHERE urn = ?");
    st.bind(1, urn).run();
}

namespace {

bool has_column(sqlite::Connection& db, const char* table, const char* column) {
    sqlite::Statement st(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?");
    st.bind_all(std::string(table), std::string(column));
    return st.step();
}

// The statements of one step of the app's upgrade (upgrade-v1-to-v11.md).
void app_upgrade_step(sqlite::Connection& db, int step) {
    const char* history_v8 =
        "DROP TRIGGER IF EXISTS capture_item_history;"
        "CREATE TRIGGER capture_item_history BEFORE UPDATE ON items FOR EACH ROW "
        "WHEN OLD.content IS NOT NEW.content OR OLD.title IS NOT NEW.title "
        "OR OLD.author IS NOT NEW.author OR OLD.metadata IS NOT NEW.metadata BEGIN "
        "INSERT INTO item_history (item_id, content_old, title_old, author_old, url_old, "
        "metadata_old, is_own_content_old, change_reason, change_type) VALUES (OLD.id, "
        "OLD.content, OLD.title, OLD.author, OLD.url, OLD.metadata, OLD.is_own_content, "
        "'api-update', 'update'); END;";
    const char* history_v9 =
        "DROP TRIGGER IF EXISTS capture_item_history;"
        "CREATE TRIGGER capture_item_history BEFORE UPDATE ON items FOR EACH ROW "
        "WHEN OLD.content IS NOT NEW.content OR OLD.title IS NOT NEW.title "
        "OR OLD.author IS NOT NEW.author OR OLD.metadata IS NOT NEW.metadata "
        "OR OLD.parent_id IS NOT NEW.parent_id BEGIN "
        "INSERT INTO item_history (item_id, content_old, title_old, author_old, url_old, "
        "metadata_old, is_own_content_old, parent_id_old, change_reason, change_type) VALUES "
        "(OLD.id, OLD.content, OLD.title, OLD.author, OLD.url, OLD.metadata, "
        "OLD.is_own_content, OLD.parent_id, 'api-update', 'update'); END;";
    switch (step) {
        case 2:
            db.exec(
                "CREATE TABLE IF NOT EXISTS person_profiles (id INTEGER PRIMARY KEY, urn TEXT "
                "UNIQUE NOT NULL, profile_url TEXT, display_name TEXT, source TEXT DEFAULT "
                "'manual', created_at DATETIME DEFAULT CURRENT_TIMESTAMP, updated_at DATETIME "
                "DEFAULT CURRENT_TIMESTAMP);"
                "CREATE INDEX IF NOT EXISTS idx_person_profiles_urn ON person_profiles(urn);");
            break;
        case 3:
            db.exec(
                "CREATE TABLE IF NOT EXISTS post_cache (id INTEGER PRIMARY KEY, urn TEXT UNIQUE "
                "NOT NULL, author_urn TEXT, author_name TEXT, content_preview TEXT, full_content "
                "TEXT, image_path TEXT, url TEXT, created_at DATETIME, fetched_at DATETIME "
                "DEFAULT CURRENT_TIMESTAMP, source TEXT DEFAULT 'manual');"
                "CREATE INDEX IF NOT EXISTS idx_post_cache_urn ON post_cache(urn);");
            break;
        case 4:
            if (!has_column(db, "post_cache", "reactor_name"))
                db.exec("ALTER TABLE post_cache ADD COLUMN reactor_name TEXT");
            break;
        case 5:
            if (!has_column(db, "items", "parent_id"))
                db.exec("ALTER TABLE items ADD COLUMN parent_id INTEGER");
            db.exec("CREATE INDEX IF NOT EXISTS idx_items_parent ON items(parent_id)");
            break;
        case 6:
            db.exec(
                "CREATE TABLE IF NOT EXISTS collections (id INTEGER PRIMARY KEY, name TEXT NOT "
                "NULL, description TEXT, created_at DATETIME DEFAULT CURRENT_TIMESTAMP, "
                "updated_at DATETIME DEFAULT CURRENT_TIMESTAMP, metadata TEXT);"
                "CREATE TABLE IF NOT EXISTS collection_items (collection_id INTEGER REFERENCES "
                "collections(id) ON DELETE CASCADE, item_id INTEGER REFERENCES items(id) ON "
                "DELETE CASCADE, added_at DATETIME DEFAULT CURRENT_TIMESTAMP, note TEXT, "
                "PRIMARY KEY (collection_id, item_id));"
                "CREATE INDEX IF NOT EXISTS idx_collection_items_item ON "
                "collection_items(item_id);");
            break;
        case 7:
            db.exec(
                "CREATE TABLE IF NOT EXISTS item_media (id INTEGER PRIMARY KEY, item_id INTEGER "
                "NOT NULL REFERENCES items(id) ON DELETE CASCADE, media_type TEXT NOT NULL, url "
                "TEXT, local_path TEXT, mime_type TEXT, alt_text TEXT, position INTEGER DEFAULT "
                "0, source_origin TEXT DEFAULT 'sync', created_at DATETIME DEFAULT "
                "CURRENT_TIMESTAMP);"
                "CREATE INDEX IF NOT EXISTS idx_item_media_item ON item_media(item_id);");
            break;
        case 8:
            db.exec(history_v8);
            break;
        case 9:
            if (!has_column(db, "item_history", "parent_id_old"))
                db.exec("ALTER TABLE item_history ADD COLUMN parent_id_old INTEGER");
            db.exec(history_v9);
            db.exec(
                "DELETE FROM item_history WHERE item_id IN (SELECT id FROM items WHERE "
                "source_type IN ('linkedin', 'youtube', 'audible', 'bluesky')) AND id NOT IN "
                "(SELECT min(h.id) FROM item_history h GROUP BY h.item_id, "
                "coalesce(h.content_old, ''), coalesce(h.title_old, ''), "
                "coalesce(h.metadata_old, ''))");
            break;
        case 10:
            if (!has_column(db, "tags", "kind"))
                db.exec("ALTER TABLE tags ADD COLUMN kind TEXT NOT NULL DEFAULT 'ad-hoc'");
            break;
        case 11:
            db.exec(
                "CREATE TABLE IF NOT EXISTS syndications (id INTEGER PRIMARY KEY, item_id "
                "INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE, target TEXT NOT NULL, "
                "target_url TEXT NOT NULL, published_at DATETIME NOT NULL DEFAULT "
                "CURRENT_TIMESTAMP, request_body TEXT, response_body TEXT, UNIQUE(item_id, "
                "target, target_url));"
                "CREATE INDEX IF NOT EXISTS idx_syndications_item ON syndications(item_id);");
            break;
        default:
            throw std::invalid_argument("the app has no upgrade step " + std::to_string(step));
    }
}

}  // namespace

void upgrade_app_schema(const std::string& path, int from, int to,
                        const std::function<void(int step)>& between) {
    AppWriter app(path);
    auto& db = app.db();
    for (int step = from + 1; step <= to; ++step) {
        {
            sqlite::Transaction txn(db);
            app_upgrade_step(db, step);
            db.exec("PRAGMA user_version = " + std::to_string(step));
            txn.commit();
        }
        if (between)
            between(step);
    }
}

ConnectedShell::ConnectedShell(const std::string& path) {
    std::fflush(nullptr);  // the child must not repeat our buffered output
    pipe_ = ::popen(("sqlite3 '" + path + "' > /dev/null").c_str(), "w");
    if (!pipe_)
        throw std::runtime_error("cannot run the sqlite3 shell on " + path);
    std::fputs("SELECT count(*) FROM items;\n", pipe_);  // connects: its first statement
    std::fflush(pipe_);
}

int ConnectedShell::quit() {
    if (!pipe_)
        return 0;
    std::fputs(".quit\n", pipe_);
    const int status = ::pclose(pipe_);
    pipe_ = nullptr;
    return status;
}

}  // namespace lestash::test
