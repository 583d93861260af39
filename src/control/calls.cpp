// Method names and params, checked and typed (see include/lestash_sync/control/calls.hpp).
#include "lestash_sync/control/calls.hpp"

namespace lestash::rpc {

const std::vector<std::string>& method_names() {
    static const std::vector<std::string> names = {"hello",
                                                   "version",
                                                   "status",
                                                   "metrics",
                                                   "sync.now",
                                                   "sync.pause",
                                                   "sync.resume",
                                                   "items.search",
                                                   "items.get",
                                                   "items.history",
                                                   "conflicts.list",
                                                   "conflicts.resolve",
                                                   "dead_letters.list",
                                                   "verify",
                                                   "events.subscribe"};
    return names;
}

namespace {

std::string item_id(const json& params) {
    const auto it = params.find("id");
    if (it != params.end() && it->is_number_integer() && !it->is_number_unsigned())
        return std::to_string(it->get<std::int64_t>());
    if (it != params.end() && it->is_number_unsigned())
        return std::to_string(it->get<std::uint64_t>());
    if (it != params.end() && it->is_string())
        return it->get<std::string>();
    throw Failure(invalid_params, "\"id\" is required: the item's number or its UUID");
}

SearchCall parse_search(const Request& request, const Params& p) {
    p.only({"query", "limit", "offset", "source", "highlight"});
    SearchCall c;
    auto& o = c.options;
    o.query = p.required_text("query");
    o.limit = static_cast<int>(p.integer("limit", 1, 1000).value_or(20));
    o.offset = static_cast<int>(p.integer("offset", 0, 100000000).value_or(0));
    o.source_type = p.text("source");
    const auto h = request.params.find("highlight");
    if (h != request.params.end() && !h->is_null()) {
        if (!h->is_array() || h->size() != 2 || !(*h)[0].is_string() || !(*h)[1].is_string())
            throw Failure(invalid_params, "\"highlight\" must be two strings: [before, after]");
        o.mark_start = (*h)[0].get<std::string>();
        o.mark_end = (*h)[1].get<std::string>();
        if (o.mark_start.size() + o.mark_end.size() > 64)
            throw Failure(invalid_params, "\"highlight\" markers are limited to 64 bytes together");
    }
    return c;
}

ResolveConflictCall parse_resolve(const Params& p) {
    p.only({"id", "keep"});
    const auto id = p.integer("id", 1, INT64_MAX);
    if (!id)
        throw Failure(invalid_params, "\"id\" is required: the conflict's number");
    const auto keep = p.required_text("keep");
    if (keep != "winner" && keep != "loser")
        throw Failure(invalid_params, "\"keep\" must be \"winner\" or \"loser\"");
    return ResolveConflictCall{*id, keep == "loser"};
}

}  // namespace

Call parse_call(const Request& request) {
    const Params p(request.params);
    const auto& m = request.method;
    if (m == "hello" || m == "version") {
        p.only({"client", "protocol"});
        p.text("client");
        p.integer("protocol", 0, 1000000);
        return HelloCall{};
    }
    if (m == "status")
        return p.only({}), StatusCall{};
    if (m == "metrics")
        return p.only({}), MetricsCall{};
    if (m == "sync.pause")
        return p.only({}), PauseCall{};
    if (m == "sync.resume")
        return p.only({}), ResumeCall{};
    if (m == "events.subscribe")
        return p.only({}), SubscribeCall{};
    if (m == "sync.now") {
        p.only({"wait", "timeout_ms"});
        return SyncNowCall{p.boolean("wait").value_or(false),
                           p.integer("timeout_ms", 0, 24LL * 3600 * 1000).value_or(60000)};
    }
    if (m == "items.search")
        return parse_search(request, p);
    if (m == "items.get" || m == "items.history") {
        const bool history = m == "items.history";
        history ? p.only({"id", "limit"}) : p.only({"id"});
        ItemCall c{item_id(request.params), history, 100};
        c.limit = static_cast<int>(p.integer("limit", 1, 100000).value_or(100));
        return c;
    }
    if (m == "conflicts.list") {
        p.only({"all", "limit"});
        return ListConflictsCall{p.boolean("all").value_or(false),
                                 p.integer("limit", 1, 100000).value_or(1000)};
    }
    if (m == "conflicts.resolve")
        return parse_resolve(p);
    if (m == "dead_letters.list") {
        p.only({"limit"});
        return ListDeadLettersCall{p.integer("limit", 1, 100000).value_or(100)};
    }
    if (m == "verify") {
        p.only({"repair"});
        return VerifyCall{p.boolean("repair").value_or(false)};
    }
    throw Failure(method_not_found, "unknown method \"" + m + "\" — `hello` lists the methods");
}

}  // namespace lestash::rpc
