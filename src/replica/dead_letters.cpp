// Every statement on _lestash_sync_dead_letters (see dead_letters.hpp).
#include "lestash_sync/replica/dead_letters.hpp"

namespace lestash {

void DeadLetters::add(const DeadLetter& d) {
    sqlite::Statement st(db_,
                         "INSERT INTO _lestash_sync_dead_letters (tbl, row_uuid, op, payload, "
                         "error, sqlstate) VALUES (?, ?, ?, ?, ?, ?)");
    st.bind_all(d.table, d.uuid, d.op, d.payload, d.error, d.sqlstate).run();
}

nlohmann::json DeadLetters::list(std::int64_t limit) {
    sqlite::Statement st(db_,
                         "SELECT id, tbl, row_uuid, op, payload, error, sqlstate, failed_at FROM "
                         "(SELECT * FROM _lestash_sync_dead_letters ORDER BY id DESC LIMIT ?) "
                         "ORDER BY id");
    st.bind(1, limit);
    nlohmann::json out = nlohmann::json::array();
    auto text = [&](int i) {
        return st.is_null(i) ? nlohmann::json(nullptr) : nlohmann::json(st.text(i));
    };
    while (st.step())
        out.push_back({{"id", st.integer(0)},
                       {"table", text(1)},
                       {"row_uuid", text(2)},
                       {"op", text(3)},
                       {"payload", text(4)},
                       {"error", text(5)},
                       {"sqlstate", text(6)},
                       {"failed_at", text(7)}});
    return out;
}

std::set<std::string> DeadLetters::refused_inserts(const std::string& table) {
    sqlite::Statement st(db_,
                         "SELECT row_uuid FROM _lestash_sync_dead_letters WHERE tbl = ? AND op = "
                         "'insert'");
    st.bind(1, table);
    std::set<std::string> out;
    while (st.step())
        if (!st.is_null(0))
            out.insert(st.text(0));
    return out;
}

std::int64_t DeadLetters::count() {
    return db_.query_int("SELECT count(*) FROM _lestash_sync_dead_letters");
}

}  // namespace lestash
