// Every statement on _lestash_sync_applying (see apply_scope.hpp).
#include "lestash_sync/replica/apply_scope.hpp"

namespace lestash {

ApplyScope::ApplyScope(sqlite::Connection& db, bool wait_for_disk)
    : db_(db), txn_(db, !wait_for_disk) {
    db_.exec("INSERT INTO _lestash_sync_applying (flag) VALUES (1)");
}

void ApplyScope::commit() {
    db_.exec("DELETE FROM _lestash_sync_applying");
    txn_.commit();
}

std::string ApplyScope::not_applying_sql() {
    return "NOT EXISTS (SELECT 1 FROM _lestash_sync_applying)";
}

}  // namespace lestash
