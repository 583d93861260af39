// Every statement on _lestash_sync_deferred and _lestash_sync_unresolved
// (see held_back.hpp).
#include "lestash_sync/replica/held_back.hpp"

#include "lestash_sync/common/uuid.hpp"

namespace lestash {
namespace {

sqlite::Value uuid_blob(const std::string& uuid) {
    return sqlite::Blob{uuid_to_bytes(uuid)};
}

std::string uuid_text(const sqlite::Value& blob) {
    return uuid_from_bytes(std::get<sqlite::Blob>(blob).bytes);
}

}  // namespace

DeferredRows::DeferredRows(sqlite::Connection& db)
    : db_(db),
      insert_(db, "INSERT OR IGNORE INTO _lestash_sync_deferred (tbl, uuid) VALUES (?, ?)"),
      delete_(db, "DELETE FROM _lestash_sync_deferred WHERE tbl = ? AND uuid = ?") {}

void DeferredRows::add(const std::string& table, const std::string& uuid) {
    insert_.bind(1, table).bind(2, uuid_blob(uuid)).run();
}

void DeferredRows::remove(const std::string& table, const std::string& uuid) {
    delete_.bind(1, table).bind(2, uuid_blob(uuid)).run();
}

bool DeferredRows::any() {
    return db_.query_int("SELECT count(*) FROM _lestash_sync_deferred") > 0;
}

std::vector<std::pair<std::string, std::string>> DeferredRows::all() {
    std::vector<std::pair<std::string, std::string>> out;
    sqlite::Statement st(db_, "SELECT tbl, uuid FROM _lestash_sync_deferred");
    while (st.step()) out.emplace_back(st.text(0), uuid_text(st.value(1)));
    return out;
}

UnresolvedReferences::UnresolvedReferences(sqlite::Connection& db)
    : db_(db),
      forget_row_(db, "DELETE FROM _lestash_sync_unresolved WHERE tbl = ? AND local_id = ?"),
      insert_(db,
              "INSERT OR REPLACE INTO _lestash_sync_unresolved (tbl, local_id, col, parent_uuid) "
              "VALUES (?, ?, ?, ?)"),
      delete_(db,
              "DELETE FROM _lestash_sync_unresolved WHERE tbl = ? AND local_id = ? AND col = ?") {}

void UnresolvedReferences::replace(
    const std::string& table, std::int64_t local_id,
    const std::vector<std::pair<std::string, std::string>>& references) {
    forget_row_.bind(1, table).bind(2, local_id).run();
    for (const auto& [column, uuid] : references)
        insert_.bind(1, table).bind(2, local_id).bind(3, column).bind(4, uuid_blob(uuid)).run();
}

void UnresolvedReferences::resolved(const std::string& table, std::int64_t local_id,
                                    const std::string& column) {
    delete_.bind(1, table).bind(2, local_id).bind(3, column).run();
}

bool UnresolvedReferences::any() {
    return db_.query_int("SELECT count(*) FROM _lestash_sync_unresolved") > 0;
}

std::vector<UnresolvedReference> UnresolvedReferences::all() {
    std::vector<UnresolvedReference> out;
    sqlite::Statement st(db_,
                         "SELECT tbl, local_id, col, parent_uuid FROM _lestash_sync_unresolved");
    while (st.step())
        out.push_back({st.text(0), st.integer(1), st.text(2), uuid_text(st.value(3))});
    return out;
}

}  // namespace lestash
