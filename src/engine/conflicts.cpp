// Conflicts recorded upstream: listing them with local context, resolving
// them through lestash.resolve_conflict (migrations/postgres/004); and the
// changes refused for good, this replica's and the phones'. Used by the
// control API.
#include <nlohmann/json.hpp>

#include "lestash_sync/common/text.hpp"
#include "lestash_sync/engine/sync_engine.hpp"
#include "lestash_sync/replica/dead_letters.hpp"

namespace lestash {

using json = nlohmann::json;

json SyncEngine::list_conflicts(bool include_resolved, std::int64_t limit) {
    const auto rows =
        upstream_.transact("listing the conflicts at " + upstream_.target(), [&](pqxx::work& tx) {
            return tx.exec_params(
                "SELECT c.id, c.tbl, c.row_id::text, c.column_name, c.winner_value::text, "
                "c.winner_origin::text, wr.name, c.loser_value::text, c.loser_origin::text, "
                "lr.name, "
                "to_char(c.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "to_char(c.resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "c.resolution "
                "FROM lestash.conflicts c "
                "LEFT JOIN lestash.replicas wr ON wr.id = c.winner_origin "
                "LEFT JOIN lestash.replicas lr ON lr.id = c.loser_origin "
                "WHERE $1 OR c.resolved_at IS NULL ORDER BY c.id LIMIT $2",
                include_resolved, limit);
        });
    auto text_or_null = [](const pqxx::field& f) {
        return f.is_null() ? json(nullptr) : json(f.c_str());
    };
    auto json_or_null = [](const pqxx::field& f) {
        return f.is_null() ? json(nullptr) : json::parse(f.c_str());
    };
    json out = json::array();
    for (const auto& r : rows) {
        const std::string table = r[1].c_str(), uuid = r[2].c_str();
        json c = {{"id", r[0].as<std::int64_t>()},
                  {"table", table},
                  {"row_uuid", uuid},
                  {"column", r[3].c_str()},
                  {"winner",
                   {{"value", json_or_null(r[4])},
                    {"origin", text_or_null(r[5])},
                    {"replica", text_or_null(r[6])}}},
                  {"loser",
                   {{"value", json_or_null(r[7])},
                    {"origin", text_or_null(r[8])},
                    {"replica", text_or_null(r[9])}}},
                  {"detected_at", text_or_null(r[10])},
                  {"resolved_at", text_or_null(r[11])},
                  {"resolution", text_or_null(r[12])},
                  {"local_id", nullptr},
                  {"title", nullptr}};
        if (const auto known = ids_.by_uuid(table, uuid)) {
            c["local_id"] = known->local_id;
            if (table == "items") {
                sqlite::Statement t(replica_.db(), "SELECT title FROM items WHERE id = ?");
                t.bind(1, known->local_id);
                if (t.step() && !t.is_null(0))
                    c["title"] = t.text(0);
            }
        }
        out.push_back(std::move(c));
    }
    return {{"conflicts", std::move(out)}};
}

json SyncEngine::list_dead_letters(std::int64_t limit) {
    const auto rows = upstream_.transact<pqxx::read_transaction>(
        "listing the phones' dead letters at " + upstream_.target(),
        [&](pqxx::read_transaction& tx) {
            if (tx.exec1("SELECT to_regclass('lestash.phone_dead_letters') IS NULL")[0].as<bool>())
                return pqxx::result();
            return tx.exec_params(
                "SELECT d.id, d.device::text, r.name, d.client_tx, d.failed_op, d.error, "
                "d.sqlstate, "
                "d.detail, to_char(d.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                "d.ops::text "
                "FROM (SELECT * FROM lestash.phone_dead_letters WHERE resolved_at IS NULL "
                "ORDER BY id DESC LIMIT $1) d LEFT JOIN lestash.replicas r ON r.id = d.device "
                "ORDER BY d.id",
                limit);
        });
    auto text_or_null = [](const pqxx::field& f) {
        return f.is_null() ? json(nullptr) : json(f.c_str());
    };
    json phones = json::array();
    for (const auto& r : rows)
        phones.push_back({{"id", r[0].as<std::int64_t>()},
                          {"device", r[1].c_str()},
                          {"replica", text_or_null(r[2])},
                          {"transaction_id", r[3].as<std::int64_t>()},
                          {"failed_op", r[4].is_null() ? json(nullptr) : json(r[4].as<int>())},
                          {"error", r[5].c_str()},
                          {"sqlstate", r[6].c_str()},
                          {"detail", text_or_null(r[7])},
                          {"at", r[8].c_str()},
                          {"ops", json::parse(r[9].c_str())}});
    return {{"local", DeadLetters(replica_.db()).list(limit)}, {"phones", std::move(phones)}};
}

json SyncEngine::resolve_conflict(std::int64_t id, bool keep_loser) {
    const std::string doing =
        "resolving conflict " + std::to_string(id) + " at " + upstream_.target();
    return upstream_.transact(doing, [&](pqxx::work& tx) {
        try {
            const auto r =
                tx.exec_params1("SELECT lestash.resolve_conflict($1, $2)::text", id, keep_loser);
            return json::parse(r[0].c_str());
        } catch (const pqxx::sql_error& e) {
            // Refusals (no such conflict, already resolved, row gone) are the
            // user's to read: the server's message as it is.
            std::string msg = trim_end(e.what());
            if (msg.rfind("ERROR:  ", 0) == 0)
                msg.erase(0, 8);
            const std::string state = e.sqlstate();
            if (state == "P0002" || state == "55000")
                throw UpstreamError(msg, false, state);
            throw;
        }
    });
}

}  // namespace lestash
