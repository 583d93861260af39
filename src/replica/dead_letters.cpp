// Every statement on _lestash_sync_dead_letters (see dead_letters.hpp).
#include "lestash_sync/replica/dead_letters.hpp"

namespace lestash {

void DeadLetters::add(const DeadLetter& d) {
    sqlite::Statement st(db_,
                         "INSERT INTO _lestash_sync_dead_letters (tbl, row_uuid, op, payload, "
                         "error, sqlstate) VALUES (?, ?, ?, ?, ?, ?)");
    st.bind_all(d.table, d.uuid, d.op, d.payload, d.error, d.sqlstate).run();
}

std::int64_t DeadLetters::count() {
    return db_.query_int("SELECT count(*) FROM _lestash_sync_dead_letters");
}

}  // namespace lestash
