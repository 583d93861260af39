// Dead letters (_lestash_sync_dead_letters): local changes Postgres refused
// for good (a constraint, bad data, a permission), kept with the error
// instead of wedging the outbox. The push adds them, status counts them;
// this module owns every statement on the table.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash {

struct DeadLetter {
    std::string table, uuid, op, payload, error, sqlstate;
};

class DeadLetters {
  public:
    explicit DeadLetters(sqlite::Connection& db) : db_(db) {}

    void add(const DeadLetter& letter);
    std::int64_t count();
    // The rows of `table` whose insert Postgres refused: local rows it
    // never had (unless pushed since), not rows deleted there.
    std::set<std::string> refused_inserts(const std::string& table);
    // The newest `limit`, oldest first: [{id, table, row_uuid, op, payload,
    // error, sqlstate, failed_at}].
    nlohmann::json list(std::int64_t limit);

  private:
    sqlite::Connection& db_;
};

}  // namespace lestash
