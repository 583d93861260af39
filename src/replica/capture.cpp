// Capture trigger SQL, generated from the table spec and the live columns.
#include "lestash_sync/replica/capture.hpp"

#include "lestash_sync/common/sqlite.hpp"
#include "lestash_sync/replica/apply_scope.hpp"
#include "lestash_sync/replica/identity.hpp"
#include "lestash_sync/replica/outbox.hpp"

namespace lestash {
namespace {

using sqlite::quote_identifier;
using sqlite::quote_literal;

std::string trigger_name(const TableSpec& spec, const char* what) {
    return quote_identifier(std::string(kObjectPrefix) + spec.name + "_" + what);
}

// "OLD.a IS NOT NEW.a OR OLD.b IS NOT NEW.b ..."
std::string any_differs(const std::vector<std::string>& cols) {
    std::string out;
    for (const auto& c : cols) {
        if (!out.empty())
            out += " OR ";
        out += "OLD." + quote_identifier(c) + " IS NOT NEW." + quote_identifier(c);
    }
    return out.empty() ? "0" : out;
}

// The comma-separated names of the columns that differ between OLD and NEW.
std::string changed_list(const std::vector<std::string>& cols) {
    std::string out;
    for (const auto& c : cols) {
        if (!out.empty())
            out += " || ";
        out += "CASE WHEN OLD." + quote_identifier(c) + " IS NOT NEW." + quote_identifier(c) +
               " THEN " + quote_literal(c + ",") + " ELSE '' END";
    }
    return "rtrim(" + out + ", ',')";
}

// JSON array of the row's local key values (link tables).
std::string key_json(const TableSpec& spec, const char* row) {
    std::string out = "json_array(";
    for (size_t i = 0; i < spec.local_key.size(); ++i)
        out += std::string(i ? ", " : "") + row + "." + quote_identifier(spec.local_key[i]);
    return out + ")";
}

// JSON array of the parents' UUIDs (hex) for a deleted link row.
std::string link_uuids_json(const TableSpec& spec) {
    std::string out = "json_array(";
    for (size_t i = 0; i < spec.foreign_keys.size(); ++i) {
        const auto& fk = spec.foreign_keys[i];
        out += std::string(i ? ", " : "") + "lower(hex(" +
               IdentityMap::uuid_sql(fk.parent_table, "OLD." + quote_identifier(fk.column)) + "))";
    }
    return out + ")";
}

// The outbox row for one op: the row's local key, and for a delete the
// identity it had (its UUID; a link row's parents' UUIDs).
std::string outbox_insert(const TableSpec& spec, const char op, const char* row,
                          const std::string& changed) {
    if (!spec.keyed_by_rowid())
        return Outbox::capture_sql(spec, op, key_json(spec, row),
                                   op == 'D' ? link_uuids_json(spec) : changed);
    const std::string id = std::string(row) + "." + quote_identifier(spec.local_key[0]);
    return Outbox::capture_sql(spec, op, id,
                               op == 'D' ? IdentityMap::uuid_sql(spec.name, id) : changed);
}

}  // namespace

std::vector<std::string> capture_trigger_names(const std::string& table) {
    std::vector<std::string> out;
    for (const char* what : {"insert", "update", "rekey", "delete"})
        out.push_back(std::string(kObjectPrefix) + table + "_" + what);
    return out;
}

std::vector<std::string> capture_trigger_sql(const TableSpec& spec,
                                             const std::vector<std::string>& columns) {
    const std::string on = " ON " + quote_identifier(spec.name);
    const std::string key_same = any_differs(spec.local_key);  // true when the key moved
    // A row that takes over a deleted row's rowid must not inherit its UUID.
    const std::string forget_stale_id =
        spec.keyed_by_rowid()
            ? IdentityMap::forget_sql(spec.name, "NEW." + quote_identifier(spec.local_key[0])) +
                  "\n    "
            : std::string();
    const std::string not_applying = ApplyScope::not_applying_sql();

    std::vector<std::string> out;
    out.push_back("CREATE TRIGGER " + trigger_name(spec, "insert") + " AFTER INSERT" + on +
                  " WHEN " + not_applying + "\nBEGIN\n    " + forget_stale_id +
                  outbox_insert(spec, 'I', "NEW", "NULL") + "\nEND");
    out.push_back("CREATE TRIGGER " + trigger_name(spec, "update") + " AFTER UPDATE" + on +
                  " WHEN " + not_applying + " AND NOT (" + key_same + ") AND (" +
                  any_differs(columns) + ")\nBEGIN\n    " +
                  outbox_insert(spec, 'U', "NEW", changed_list(columns)) + "\nEND");
    // A changed local key is a different row as far as identity goes.
    out.push_back("CREATE TRIGGER " + trigger_name(spec, "rekey") + " AFTER UPDATE" + on +
                  " WHEN " + not_applying + " AND (" + key_same + ")\nBEGIN\n    " +
                  outbox_insert(spec, 'D', "OLD", "NULL") + "\n    " + forget_stale_id +
                  outbox_insert(spec, 'I', "NEW", "NULL") + "\nEND");
    out.push_back("CREATE TRIGGER " + trigger_name(spec, "delete") + " AFTER DELETE" + on +
                  " WHEN " + not_applying + "\nBEGIN\n    " +
                  outbox_insert(spec, 'D', "OLD", "NULL") + "\nEND");
    return out;
}

}  // namespace lestash
