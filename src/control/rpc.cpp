// JSON-RPC 2.0 envelopes (see include/lestash_sync/control/rpc.hpp).
#include "lestash_sync/control/rpc.hpp"

namespace lestash::rpc {

namespace {

Rejection reject(const json& id, int code, const std::string& message) {
    return {error_response(id, code, message)};
}

std::string type_name(const json& v) {
    if (v.is_number_integer())
        return "an integer";
    if (v.is_number())
        return "a number";
    return std::string(v.is_string()    ? "a string"
                       : v.is_boolean() ? "a boolean"
                       : v.is_null()    ? "null"
                       : v.is_array()   ? "an array"
                                        : "an object");
}

}  // namespace

std::variant<Request, Rejection> parse_request(std::string_view line) {
    json message;
    try {
        message = json::parse(line);
    } catch (const json::exception& e) {
        // parse_error, and also out_of_range for numbers beyond double
        // (1e999): found by the fuzzer, it used to escape and end the daemon.
        // nlohmann rejects invalid UTF-8 as a parse error too.
        return reject(nullptr, parse_error, std::string("not valid JSON (UTF-8): ") + e.what());
    }
    if (message.is_array())
        return reject(nullptr, invalid_request,
                      "batch requests are not supported: send one request per line");
    if (!message.is_object())
        return reject(nullptr, invalid_request,
                      "a request is a JSON object with \"jsonrpc\": \"2.0\" and \"method\"");
    json id = nullptr;
    const bool has_id = message.contains("id");
    if (has_id) {
        id = message["id"];
        if (!id.is_string() && !id.is_number_integer() && !id.is_null())
            return reject(nullptr, invalid_request, "\"id\" must be a string or an integer");
    }
    if (message.value("jsonrpc", json()) != "2.0")
        return reject(id, invalid_request, "\"jsonrpc\" must be \"2.0\"");
    if (!message.contains("method") || !message["method"].is_string())
        return reject(id, invalid_request, "\"method\" must be a string");
    Request r;
    r.id = id;
    r.notification = !has_id;
    r.method = message["method"].get<std::string>();
    if (message.contains("params")) {
        const json& p = message["params"];
        if (p.is_array() && p.empty()) {
            r.params = json::object();
        } else if (!p.is_object()) {
            return reject(id, invalid_request, "\"params\" must be an object (named params)");
        } else {
            r.params = p;
        }
    }
    for (const auto& [key, value] : message.items()) {
        (void)value;
        if (key != "jsonrpc" && key != "id" && key != "method" && key != "params")
            return reject(id, invalid_request, "unknown member \"" + key + "\" in the request");
    }
    return r;
}

json error_response(const json& id, int code, const std::string& message, const json& data) {
    json error = {{"code", code}, {"message", message}};
    if (!data.is_null())
        error["data"] = data;
    return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

json result_response(const json& id, json result) {
    return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json notification(const std::string& method, json params) {
    return {{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

std::string frame(const json& message) {
    // Item text is the user's: never let a stray byte break the stream.
    return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

const json* Params::get(const std::string& name) const {
    const auto it = params_.find(name);
    if (it == params_.end() || it->is_null())
        return nullptr;
    return &*it;
}

std::optional<std::string> Params::text(const std::string& name) const {
    const json* v = get(name);
    if (!v)
        return std::nullopt;
    if (!v->is_string())
        throw Failure(invalid_params, "\"" + name + "\" must be a string, not " + type_name(*v));
    return v->get<std::string>();
}

std::string Params::required_text(const std::string& name) const {
    auto v = text(name);
    if (!v)
        throw Failure(invalid_params, "\"" + name + "\" is required (a string)");
    return *v;
}

std::optional<std::int64_t> Params::integer(const std::string& name, std::int64_t min,
                                            std::int64_t max) const {
    const json* v = get(name);
    if (!v)
        return std::nullopt;
    if (!v->is_number_integer())
        throw Failure(invalid_params, "\"" + name + "\" must be an integer, not " + type_name(*v));
    const bool too_big =
        v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(max);
    const auto n = too_big ? max : v->get<std::int64_t>();
    if (too_big || n < min || n > max)
        throw Failure(invalid_params, "\"" + name + "\" must be from " + std::to_string(min) +
                                          " to " + std::to_string(max));
    return n;
}

std::optional<bool> Params::boolean(const std::string& name) const {
    const json* v = get(name);
    if (!v)
        return std::nullopt;
    if (!v->is_boolean())
        throw Failure(invalid_params,
                      "\"" + name + "\" must be true or false, not " + type_name(*v));
    return v->get<bool>();
}

void Params::only(std::initializer_list<const char*> known) const {
    for (const auto& [key, value] : params_.items()) {
        (void)value;
        bool ok = false;
        for (const char* k : known) ok |= key == k;
        if (!ok) {
            std::string list;
            for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
            throw Failure(invalid_params, "unknown param \"" + key + "\"" +
                                              (list.empty() ? " (this method takes none)"
                                                            : " (expected: " + list + ")"));
        }
    }
}

}  // namespace lestash::rpc
