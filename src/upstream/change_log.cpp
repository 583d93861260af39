// Reading the change log (see change_log.hpp).
#include "lestash_sync/upstream/change_log.hpp"

namespace lestash {

ChangeLogCursor ChangeLogCursor::parse(const std::string& text) {
    const auto colon = text.find(':');
    return {text.substr(0, colon), std::stoll(text.substr(colon + 1))};
}

std::string ChangeLogCursor::text() const {
    return xid + ":" + std::to_string(id);
}

ChangeLogAhead change_log_ahead(pqxx::transaction_base& tx, const ChangeLogCursor& cursor) {
    const auto r = tx.exec_params1(
        "SELECT EXISTS (SELECT 1 FROM lestash.change_log_horizon WHERE (xid, id) > ($1::xid8, "
        "$2::bigint)), EXISTS (SELECT 1 FROM lestash.change_log WHERE (xid, id) > ($1::xid8, "
        "$2::bigint) AND xid >= pg_snapshot_xmin(pg_current_snapshot()))",
        cursor.xid, cursor.id);
    return {r[0].as<bool>(), r[1].as<bool>()};
}

std::vector<ChangeLogEntry> read_change_log(pqxx::transaction_base& tx,
                                            const ChangeLogCursor& cursor, int limit) {
    // ORDER BY a bare name picks an output column first: ordered by "xid"
    // the text column, "1000" sorted before "999" and a batch cut at its
    // limit moved the cursor past changes it never read. The qualified
    // names order by the xid8 column itself.
    const auto rows = tx.exec_params(
        "SELECT id, xid::text AS xid_text, tbl, row_id::text, origin::text "
        "FROM lestash.change_log WHERE (xid, id) > ($1::xid8, $2::bigint) AND xid < "
        "pg_snapshot_xmin(pg_current_snapshot()) "
        "ORDER BY change_log.xid, change_log.id LIMIT $3",
        cursor.xid, cursor.id, limit);
    std::vector<ChangeLogEntry> out;
    out.reserve(rows.size());
    for (const auto& r : rows)
        out.push_back({r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       r[3].as<std::string>(),
                       r[4].is_null() ? std::nullopt : std::optional(r[4].as<std::string>())});
    return out;
}

ChangeLogCursor change_log_horizon(pqxx::transaction_base& tx) {
    return {tx.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0].as<std::string>(),
            0};
}

}  // namespace lestash
