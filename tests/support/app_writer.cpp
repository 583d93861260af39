// The Le Stash CLI's write patterns, replayed in C++ for tests.
#include "app_writer.hpp"

#include <filesystem>
#include <fstream>

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
    // As Python's sqlite3 does: the read runs on its own, and the implicit
    // (deferred) BEGIN comes right before the first write, so the write
    // waits on the busy handler instead of failing on a stale snapshot.
    const std::int64_t max_history = db_.query_int("SELECT coalesce(max(id), 0) FROM item_history");
    sqlite::Transaction txn(db_, sqlite::Transaction::Mode::deferred);
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

std::int64_t AppWriter::insert_item(const ItemFields& item) {
    sqlite::Statement st(
        db_,
        "INSERT INTO items (source_type, source_id, url, title, content, author, "
        "created_at, is_own_content, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind_all(sqlite::Value{item.source_type}, opt(item.source_id), opt(item.url),
                opt(item.title), sqlite::Value{item.content}, opt(item.author),
                opt(item.created_at), sqlite::Value{item.is_own_content}, opt(item.metadata));
    st.run();
    return db_.last_insert_rowid();
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
    sqlite::Transaction txn(db_, sqlite::Transaction::Mode::deferred);
    sqlite::Statement ins(db_, "INSERT OR IGNORE INTO tags (name) VALUES (?)");
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

}  // namespace lestash::test
