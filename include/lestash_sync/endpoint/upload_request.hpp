// One CRUD transaction from a phone, as PowerSync's SDK serializes it,
// checked against the synced tables and turned into what
// lestash.apply_phone_transaction (migrations/postgres/009) takes: values
// mapped to the typed columns exactly as a desktop push maps them (a value
// the column cannot carry goes to _sqlite), parents before their children,
// ops numbered in runs one statement can apply. Pure: the fuzz target
// drives exactly what the endpoint does. The contract is in docs/mobile.md.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/upstream/value_codec.hpp"

namespace lestash {

// What a phone may write: the synced tables and their data columns
// (lestash.phone_columns(), migration 009).
struct PhoneColumn {
    std::string name;
    PgType type;
};
struct PhoneTable {
    std::string name;
    std::vector<PhoneColumn> columns;
    const PhoneColumn* find(std::string_view column) const;
};
using PhoneSchema = std::map<std::string, PhoneTable, std::less<>>;

// A request the endpoint refuses before Postgres sees it: its HTTP status
// (400 not the documented shape, 422 names what the server does not have or
// a value the column cannot take) and a message for the app's log.
class RequestError : public Error {
  public:
    RequestError(int status, const std::string& what, bool names_unknown = false)
        : Error(what), status_(status), names_unknown_(names_unknown) {}
    int status() const { return status_; }
    // An unknown table or column: worth reading the schema again once.
    bool names_unknown() const { return names_unknown_; }

  private:
    int status_;
    bool names_unknown_;
};

struct UploadTransaction {
    std::int64_t client_tx = 0;  // the SDK's transaction id
    std::size_t ops = 0;         // ops in the request
    // In apply order, each {"run", "i", "op", "type", "id", "data",
    // "sqlite"?, "base"?}; PATCHes that change nothing left out.
    nlohmann::json ops_for_postgres = nlohmann::json::array();
};

// Raises RequestError.
UploadTransaction parse_upload(std::string_view body, const PhoneSchema& schema);

}  // namespace lestash
