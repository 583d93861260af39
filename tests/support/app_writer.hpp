// A writer that behaves like the Le Stash Python CLI on its own connection:
// WAL, 5 s busy timeout, foreign_keys ON, short transactions, and the exact
// write patterns of ../shared/lestash-schema/README.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash::test {

struct ItemFields {
    std::string source_type = "note";
    std::optional<std::string> source_id;
    std::optional<std::string> url;
    std::optional<std::string> title;
    std::string content;
    std::optional<std::string> author;
    std::optional<std::string> created_at;
    std::int64_t is_own_content = 0;
    std::optional<std::string> metadata;
    std::optional<std::int64_t> parent_id;  // only on databases that have the column
};

class AppWriter {
  public:
    explicit AppWriter(const std::string& path);

    // INSERT ... ON CONFLICT(source_type, source_id) DO UPDATE ... WHERE one
    // of them differs; then re-tags the history rows the update created, as
    // the CLI does. Returns the item's id.
    std::int64_t upsert_item(const ItemFields& item);
    // A plain INSERT (NULL source_id notes are not upserts).
    std::int64_t insert_item(const ItemFields& item);
    void update_content(std::int64_t item_id, const std::string& content);
    void delete_item(std::int64_t item_id);
    void add_tag(std::int64_t item_id, const std::string& tag);
    void remove_tag(std::int64_t item_id, const std::string& tag);
    void upsert_source(const std::string& source_type, bool enabled,
                       const std::optional<std::string>& last_sync);
    // A media attachment as the app adds one: the file written to
    // <db dir>/media/<item id>/<first 12 hex of its sha256><ext> (unless
    // `write_file` is false: a row whose file is missing), then its
    // item_media row, skipped when a row with the same (item_id,
    // media_type, url, local_path) exists. Returns the relative path.
    std::string save_media(std::int64_t item_id, const std::string& bytes, const std::string& ext,
                           bool write_file = true);
    // INSERT of an item_media row unless the same (item_id, media_type, url,
    // local_path) exists, NULLs compared as equal; returns its id (0 when
    // skipped).
    std::int64_t add_media_row(std::int64_t item_id, const std::string& media_type,
                               const std::optional<std::string>& url,
                               const std::optional<std::string>& local_path,
                               const std::optional<std::string>& mime_type);
    void delete_media_row(std::int64_t media_id);
    std::int64_t start_sync_log(const std::string& source_type);
    void finish_sync_log(std::int64_t id, const std::string& status, int added, int updated,
                         const std::optional<std::string>& error);

    sqlite::Connection& db() { return db_; }

  private:
    bool has_parent_id();
    sqlite::Connection db_;
};

}  // namespace lestash::test
