// Parsing, checking, ordering and encoding one upload (see upload_request.hpp).
#include "lestash_sync/endpoint/upload_request.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>

#include "lestash_sync/common/uuid.hpp"

namespace lestash {
using nlohmann::json;

const PhoneColumn* PhoneTable::find(std::string_view column) const {
    for (const auto& c : columns)
        if (c.name == column)
            return &c;
    return nullptr;
}

namespace {

[[noreturn]] void bad_shape(const std::string& what) {
    throw RequestError(400, what);
}
[[noreturn]] void refused(const std::string& what, bool names_unknown = false) {
    throw RequestError(422, what, names_unknown);
}

// One op as checked, before ordering.
struct Op {
    std::size_t index = 0;  // in the request's crud list
    std::string kind, table, id;
    json data = json::object(), sqlite = json::object();
    std::optional<std::int64_t> base;
    std::vector<std::string> references;  // uuid values of its data
};

std::string op_name(const Op& op) {
    return "crud[" + std::to_string(op.index) + "] (" + op.kind + " " + op.table + ")";
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::optional<std::string> as_uuid(const json& v) {
    if (!v.is_string())
        return std::nullopt;
    std::string s = lower(v.get<std::string>());
    if (!is_uuid(s))
        return std::nullopt;
    return s;
}

// The phone's value as the SQLite value its column holds on the phone
// (PowerSync's client types: text, integer, real), or a refusal.
sqlite::Value phone_value(const Op& op, const PhoneColumn& column, const json& v) {
    const std::string where = op_name(op) + " column " + column.name;
    if (v.is_null())
        return std::monostate{};
    switch (column.type) {
        case PgType::text:
            if (v.is_string())
                return v.get<std::string>();
            refused(where + " is text: give a string or null, not " + v.dump());
        case PgType::bigint:
        case PgType::boolean:
            if (v.is_boolean())
                return std::int64_t{v.get<bool>() ? 1 : 0};
            if (v.is_number_integer() && !v.is_number_unsigned())
                return v.get<std::int64_t>();
            if (v.is_number_unsigned() &&
                v.get<std::uint64_t>() <=
                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return static_cast<std::int64_t>(v.get<std::uint64_t>());
            refused(where + " is an integer column: give a whole number within 64 bits or null, " +
                    "not " + v.dump().substr(0, 80));
        case PgType::float8:
            if (v.is_number())
                return v.get<double>();
            refused(where + " is a real column: give a number or null, not " + v.dump());
        case PgType::uuid:
            if (auto u = as_uuid(v))
                return *u;
            refused(where + " is a reference: give a row's UUID as text or null, not " +
                    v.dump().substr(0, 80));
        case PgType::bytea:
            break;
    }
    refused(where + " holds bytes, which a phone cannot send");
}

void read_data(Op& op, const json& data, const PhoneTable& table) {
    if (data.is_null())
        return;
    if (!data.is_object())
        bad_shape(op_name(op) + ": \"data\" must be an object of column values");
    for (const auto& [name, value] : data.items()) {
        if (name == "_rev")
            continue;  // the server stamps revisions; the phone's copy is only read back
        if (name == "id") {
            if (as_uuid(value) != op.id)
                refused(op_name(op) + ": data.id differs from the op's id");
            continue;
        }
        const PhoneColumn* column = table.find(name);
        if (!column)
            refused(op_name(op) + ": lestash." + table.name + " has no column \"" + name + "\"",
                    true);
        const sqlite::Value v = phone_value(op, *column, value);
        if (column->type == PgType::uuid) {
            op.data[name] = v.index() == 0 ? json(nullptr) : json(std::get<std::string>(v));
            if (v.index() != 0)
                op.references.push_back(std::get<std::string>(v));
            continue;
        }
        auto encoded = encode_value(v, column->type);
        op.data[name] = std::move(encoded.typed);
        if (encoded.override_entry)
            op.sqlite[name] = std::move(*encoded.override_entry);
    }
}

std::optional<std::int64_t> read_base(const Op& op, const json& entry) {
    const auto old = entry.find("old");
    if (old == entry.end() || old->is_null())
        return std::nullopt;
    if (!old->is_object())
        bad_shape(op_name(op) + ": \"old\" (previous values) must be an object");
    const auto rev = old->find("_rev");
    if (rev == old->end() || rev->is_null())
        return std::nullopt;
    if (!rev->is_number_integer())
        refused(op_name(op) + ": old._rev must be the integer revision the phone saw");
    return rev->get<std::int64_t>();
}

Op read_op(const json& entry, std::size_t index, const PhoneSchema& schema) {
    Op op;
    op.index = index;
    const std::string where = "crud[" + std::to_string(index) + "]";
    if (!entry.is_object())
        bad_shape(where + " must be an object (a CrudEntry as toJson() writes it)");
    const auto kind = entry.find("op");
    if (kind == entry.end() || !kind->is_string())
        bad_shape(where + ": \"op\" is required: PUT, PATCH or DELETE");
    op.kind = kind->get<std::string>();
    if (op.kind != "PUT" && op.kind != "PATCH" && op.kind != "DELETE")
        bad_shape(where + ": \"op\" is \"" + op.kind.substr(0, 40) + "\": PUT, PATCH or DELETE");
    const auto type = entry.find("type");
    if (type == entry.end() || !type->is_string())
        bad_shape(where + ": \"type\" (the table) is required");
    op.table = type->get<std::string>();
    const auto table = schema.find(op.table);
    if (table == schema.end())
        refused(where + ": \"" + op.table.substr(0, 80) + "\" is not a synced table", true);
    const auto id = entry.find("id");
    if (id == entry.end())
        bad_shape(op_name(op) + ": \"id\" is required");
    const auto uuid = as_uuid(*id);
    if (!uuid)
        refused(op_name(op) + ": \"id\" must be a UUID, not " + id->dump().substr(0, 80));
    op.id = *uuid;
    if (op.kind != "DELETE")
        read_data(op, entry.contains("data") ? entry["data"] : json(nullptr), table->second);
    if (op.kind == "PATCH")
        op.base = read_base(op, entry);
    return op;
}

std::int64_t transaction_id(const json& body, const json& crud) {
    const auto given = body.find("transaction_id");
    if (given != body.end() && !given->is_null()) {
        if (!given->is_number_integer() || given->get<std::int64_t>() < 0)
            bad_shape("\"transaction_id\" must be the SDK's transaction id, a whole number >= 0");
        return given->get<std::int64_t>();
    }
    std::optional<std::int64_t> common;
    for (const auto& entry : crud) {
        const auto tx = entry.is_object() ? entry.find("tx_id") : entry.end();
        if (!entry.is_object() || tx == entry.end() || !tx->is_number_integer() ||
            (common && *common != tx->get<std::int64_t>()))
            bad_shape(
                "\"transaction_id\" is required (CrudTransaction.transactionId), or one tx_id "
                "shared by every op");
        common = tx->get<std::int64_t>();
    }
    return *common;
}

// Parents before children whatever the order sent: an op waits for the
// first PUT of every row its references name, and for the op before it on
// the same row; otherwise the phone's order stands. A cycle (two items each
// naming the other as parent) is broken at its earliest op.
std::vector<std::size_t> apply_order(const std::vector<Op>& ops,
                                     std::vector<std::vector<std::size_t>>& waits_for) {
    std::map<std::string, std::size_t> first_put, last_on_row;
    waits_for.assign(ops.size(), {});
    for (std::size_t i = 0; i < ops.size(); ++i)
        if (ops[i].kind == "PUT")
            first_put.try_emplace(ops[i].id, i);
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (auto prev = last_on_row.find(ops[i].id); prev != last_on_row.end())
            waits_for[i].push_back(prev->second);
        last_on_row[ops[i].id] = i;
        for (const auto& ref : ops[i].references)
            if (auto parent = first_put.find(ref); parent != first_put.end() && parent->second != i)
                waits_for[i].push_back(parent->second);
    }
    std::vector<std::vector<std::size_t>> released(ops.size());
    std::vector<std::size_t> waiting(ops.size());
    std::set<std::size_t> ready, pending;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        std::sort(waits_for[i].begin(), waits_for[i].end());
        waits_for[i].erase(std::unique(waits_for[i].begin(), waits_for[i].end()),
                           waits_for[i].end());
        waiting[i] = waits_for[i].size();
        for (const auto p : waits_for[i]) released[p].push_back(i);
        (waiting[i] == 0 ? ready : pending).insert(i);
    }
    std::vector<std::size_t> order;
    while (order.size() < ops.size()) {
        if (ready.empty()) {  // a cycle
            ready.insert(*pending.begin());
            pending.erase(pending.begin());
        }
        const std::size_t next = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(next);
        for (const auto child : released[next])
            if (pending.count(child) && --waiting[child] == 0) {
                pending.erase(child);
                ready.insert(child);
            }
    }
    return order;
}

std::string run_key(const Op& op) {
    std::string key = op.kind + "\x1f" + op.table;
    for (const auto& [name, _] : op.data.items()) key += "\x1f" + name;
    return key;
}

}  // namespace

UploadTransaction parse_upload(std::string_view body, const PhoneSchema& schema) {
    json request = json::parse(body.begin(), body.end(), nullptr, false);
    if (request.is_discarded())
        bad_shape(
            "the body is not valid JSON (UTF-8): send one CrudTransaction as "
            "{\"transaction_id\": N, \"crud\": [CrudEntry.toJson(), ...]}");
    if (!request.is_object())
        bad_shape("the body must be a JSON object: {\"transaction_id\": N, \"crud\": [...]}");
    const auto crud = request.find("crud");
    if (crud == request.end() || !crud->is_array())
        bad_shape("\"crud\" is required: the transaction's CrudEntry list");
    if (crud->empty())
        bad_shape("\"crud\" is empty: a transaction has at least one op");

    UploadTransaction out;
    out.client_tx = transaction_id(request, *crud);
    out.ops = crud->size();
    std::vector<Op> ops;
    for (std::size_t i = 0; i < crud->size(); ++i) {
        Op op = read_op((*crud)[i], i, schema);
        if (op.kind == "PATCH" && op.data.empty())
            continue;  // only _rev or nothing: no change to send
        ops.push_back(std::move(op));
    }

    std::vector<std::vector<std::size_t>> waits_for;
    const auto order = apply_order(ops, waits_for);
    // Runs: consecutive ops of one kind, table and column set, none waiting
    // for another op of the same run.
    std::set<std::size_t> in_run;
    std::string key;
    std::int64_t run = -1;
    for (const auto i : order) {
        const Op& op = ops[i];
        const std::string k = run_key(op);
        const bool waits_on_run = std::any_of(waits_for[i].begin(), waits_for[i].end(),
                                              [&](std::size_t p) { return in_run.count(p) > 0; });
        if (k != key || waits_on_run) {
            ++run;
            key = k;
            in_run.clear();
        }
        in_run.insert(i);
        json o = {
            {"run", run}, {"i", op.index}, {"op", op.kind}, {"type", op.table}, {"id", op.id}};
        if (op.kind != "DELETE")
            o["data"] = op.data;
        if (!op.sqlite.empty())
            o["sqlite"] = op.sqlite;
        if (op.kind == "PATCH")
            o["base"] = op.base ? json(*op.base) : json(nullptr);
        out.ops_for_postgres.push_back(std::move(o));
    }
    return out;
}

}  // namespace lestash
