// A writer that behaves like the Le Stash Python CLI on its own connection:
// WAL, 5 s busy timeout, foreign_keys ON, short transactions, and the exact
// write patterns of ../shared/lestash-schema/README.md.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

// A transaction opened the way Python's sqlite3 opens one (isolation_level
// ""): the first write statement is prepared, and only then are BEGIN
// (deferred) issued and the statement run. The order matters. Preparing a
// statement whose triggers reach the FTS5 index connects that virtual table,
// which reads the database; inside an open transaction the read keeps its
// snapshot, and when another connection (the daemon) commits before the
// write, the write fails at once with SQLITE_BUSY_SNAPSHOT ("database is
// locked") — the busy timeout does not apply. Prepared before BEGIN, as
// Python does, the write waits on the busy handler instead.
class ImplicitTransaction {
  public:
    explicit ImplicitTransaction(sqlite::Connection& db) : db_(db) {}
    ~ImplicitTransaction();
    ImplicitTransaction(const ImplicitTransaction&) = delete;
    ImplicitTransaction& operator=(const ImplicitTransaction&) = delete;
    // BEGIN, unless this transaction has begun: call it after preparing a
    // write statement and before running it.
    void begin();
    void commit();

  private:
    sqlite::Connection& db_;
    bool open_ = false;
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
    // Plain INSERTs in one transaction, as a CLI import does; `before_commit`
    // runs after the last one, before COMMIT.
    void insert_items(const std::vector<ItemFields>& items,
                      const std::function<void()>& before_commit = {});
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

    // The rest of the user's data (v11), as the CLI writes it.
    std::int64_t create_collection(const std::string& name,
                                   const std::optional<std::string>& description);
    void rename_collection(std::int64_t id, const std::string& name,
                           const std::optional<std::string>& description);
    void delete_collection(std::int64_t id);  // cascades to its collection_items
    // INSERT OR IGNORE the link, then touch the collection's updated_at.
    void add_to_collection(std::int64_t collection_id, std::int64_t item_id,
                           const std::optional<std::string>& note);
    void remove_from_collection(std::int64_t collection_id, std::int64_t item_id);
    // Skipped (nullopt) when the item has a row with the same (media_type,
    // url, local_path), NULLs equal; else the new row's id.
    std::optional<std::int64_t> add_media(std::int64_t item_id, const std::string& media_type,
                                          const std::optional<std::string>& url,
                                          const std::optional<std::string>& local_path);
    void delete_media(std::int64_t id);
    std::int64_t record_syndication(std::int64_t item_id, const std::string& target,
                                    const std::string& target_url,
                                    const std::optional<std::string>& response_body);
    // Upsert on urn; updated_at touched when something changed.
    void upsert_profile(const std::string& urn, const std::optional<std::string>& display_name);
    void delete_profile(const std::string& urn);

    sqlite::Connection& db() { return db_; }

  private:
    bool has_parent_id();
    sqlite::Connection db_;
};

// The sqlite3 shell connected to the database at `path` and idle, as the app
// sits between commands (its connection holds its lock on the -shm, so the
// engine's write pacer leaves gaps); it disconnects when destroyed.
class ConnectedShell {
  public:
    explicit ConnectedShell(const std::string& path);
    ConnectedShell(const ConnectedShell&) = delete;
    ConnectedShell& operator=(const ConnectedShell&) = delete;
    ~ConnectedShell() { quit(); }
    // Disconnects; the shell's exit status (0 when already quit).
    int quit();

  private:
    FILE* pipe_ = nullptr;
};

// The Le Stash CLI's own upgrade of a database, steps from+1 .. to of
// ../shared/lestash-schema/upgrade-v1-to-v11.md, on a connection like the
// app's; each step followed by PRAGMA user_version = N and a commit.
// `between(step)` runs after each step's commit (writes during the upgrade).
void upgrade_app_schema(const std::string& path, int from, int to,
                        const std::function<void(int step)>& between = {});

}  // namespace lestash::test
