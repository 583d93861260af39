// Every statement on _lestash_sync_ids, and the UUID rules (see identity.hpp).
#include "lestash_sync/replica/identity.hpp"

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/common/value_text.hpp"

namespace lestash {

IdentityMap::IdentityMap(sqlite::Connection& db)
    : db_(db),
      by_local_(db,
                "SELECT uuid, server_rev FROM _lestash_sync_ids WHERE tbl = ? AND local_id = ?"),
      by_uuid_(db, "SELECT local_id, server_rev, tbl FROM _lestash_sync_ids WHERE uuid = ?"),
      forget_uuid_(db, "DELETE FROM _lestash_sync_ids WHERE uuid = ?"),
      insert_(db,
              "INSERT OR REPLACE INTO _lestash_sync_ids (tbl, local_id, uuid, server_rev) "
              "VALUES (?, ?, ?, ?)"),
      set_rev_(db, "UPDATE _lestash_sync_ids SET server_rev = ? WHERE uuid = ?") {}

namespace {
sqlite::Value uuid_blob(const std::string& uuid) {
    return sqlite::Blob{uuid_to_bytes(uuid)};
}
}  // namespace

std::optional<Mapping> IdentityMap::by_local_id(const std::string& table, std::int64_t local_id) {
    by_local_.bind(1, table).bind(2, local_id);
    std::optional<Mapping> out;
    if (by_local_.step()) {
        out = Mapping{local_id, uuid_from_bytes(std::get<sqlite::Blob>(by_local_.value(0)).bytes),
                      by_local_.is_null(1) ? std::nullopt
                                           : std::optional<std::int64_t>(by_local_.integer(1))};
    }
    by_local_.reset();
    return out;
}

std::optional<Mapping> IdentityMap::by_uuid(const std::string& table, const std::string& uuid) {
    by_uuid_.bind(1, uuid_blob(uuid));
    std::optional<Mapping> out;
    if (by_uuid_.step() && by_uuid_.text(2) == table) {
        out = Mapping{
            by_uuid_.integer(0), uuid,
            by_uuid_.is_null(1) ? std::nullopt : std::optional<std::int64_t>(by_uuid_.integer(1))};
    }
    by_uuid_.reset();
    return out;
}

void IdentityMap::set(const std::string& table, std::int64_t local_id, const std::string& uuid,
                      std::optional<std::int64_t> server_rev) {
    forget(uuid);
    insert_.bind(1, table).bind(2, local_id).bind(3, uuid_blob(uuid));
    if (server_rev)
        insert_.bind(4, *server_rev);
    insert_.run();
}

void IdentityMap::set_server_rev(const std::string& uuid, std::int64_t rev) {
    set_rev_.bind(1, rev).bind(2, uuid_blob(uuid)).run();
}

void IdentityMap::forget(const std::string& uuid) {
    forget_uuid_.bind(1, uuid_blob(uuid)).run();
}

std::vector<std::string> IdentityMap::uuids_of(const std::string& table) {
    sqlite::Statement st(db_, "SELECT uuid FROM _lestash_sync_ids WHERE tbl = ?");
    st.bind(1, table);
    std::vector<std::string> out;
    while (st.step()) out.push_back(uuid_from_bytes(std::get<sqlite::Blob>(st.value(0)).bytes));
    return out;
}

bool IdentityMap::any() {
    return db_.query_int("SELECT EXISTS (SELECT 1 FROM _lestash_sync_ids)") != 0;
}

sqlite::Statement& IdentityMap::link_statement(std::optional<sqlite::Statement>& slot,
                                               const char* sql) {
    if (!slot)
        slot.emplace(db_, sql);
    return *slot;
}

std::optional<std::int64_t> IdentityMap::link_rev(const std::string& uuid) {
    auto& st =
        link_statement(link_rev_, "SELECT server_rev FROM _lestash_sync_link_revs WHERE uuid = ?");
    st.bind(1, uuid_blob(uuid));
    std::optional<std::int64_t> out;
    if (st.step())
        out = st.integer(0);
    st.reset();
    return out;
}

void IdentityMap::set_link_rev(const std::string& table, const std::string& uuid,
                               std::int64_t rev) {
    link_statement(set_link_rev_,
                   "INSERT OR REPLACE INTO _lestash_sync_link_revs (uuid, tbl, server_rev) "
                   "VALUES (?, ?, ?)")
        .bind(1, uuid_blob(uuid))
        .bind(2, table)
        .bind(3, rev)
        .run();
}

void IdentityMap::forget_link(const std::string& uuid) {
    link_statement(forget_link_, "DELETE FROM _lestash_sync_link_revs WHERE uuid = ?")
        .bind(1, uuid_blob(uuid))
        .run();
}

std::string IdentityMap::uuid_sql(const std::string& table, const std::string& local_id) {
    return "(SELECT uuid FROM _lestash_sync_ids WHERE tbl = " + sqlite::quote_literal(table) +
           " AND local_id = " + local_id + ")";
}

std::string IdentityMap::forget_sql(const std::string& table, const std::string& local_id) {
    return "DELETE FROM _lestash_sync_ids WHERE tbl = " + sqlite::quote_literal(table) +
           " AND local_id = " + local_id + ";";
}

std::optional<std::string> natural_key_part(const sqlite::Value& value) {
    if (value.index() == 0)
        return std::nullopt;
    return tagged_value(value, TextAs::raw);
}

std::string new_row_uuid(const TableSpec& spec,
                         const std::vector<std::optional<std::string>>& key_parts) {
    if (spec.identity != IdentityRule::natural_key || key_parts.empty())
        return random_uuid();
    std::string name = spec.name;
    for (const auto& part : key_parts) {
        if (!part)
            return random_uuid();
        name += '\x1f' + *part;
    }
    return name_based_uuid(kRowNamespace, name);
}

std::string link_row_uuid(const TableSpec& spec, const std::vector<std::string>& parent_uuids) {
    std::string name = spec.name;
    for (const auto& u : parent_uuids) name += '\x1f' + u;
    return name_based_uuid(kRowNamespace, name);
}

}  // namespace lestash
