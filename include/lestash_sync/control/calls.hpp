// A request's method and params checked and typed, before anything runs:
// the one place that decides what each method accepts (docs/protocol.md).
// Pure, so the fuzz target drives exactly what the daemon does.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "lestash_sync/control/queries.hpp"
#include "lestash_sync/control/rpc.hpp"

namespace lestash::rpc {

struct HelloCall {};
struct StatusCall {};
struct MetricsCall {};
struct PauseCall {};
struct ResumeCall {};
struct SyncNowCall {
    bool wait = false;
    std::int64_t timeout_ms = 60000;
};
struct SearchCall {
    queries::SearchOptions options;
};
struct ItemCall {
    std::string id;  // local number or UUID, as given
    bool history = false;
    int limit = 100;
};
struct ListConflictsCall {
    bool all = false;
    std::int64_t limit = 1000;
};
struct ResolveConflictCall {
    std::int64_t id = 0;
    bool keep_loser = false;
};
struct ListDeadLettersCall {
    std::int64_t limit = 100;
};
struct VerifyCall {
    bool repair = false;
};
struct SubscribeCall {};

using Call = std::variant<HelloCall, StatusCall, MetricsCall, PauseCall, ResumeCall, SyncNowCall,
                          SearchCall, ItemCall, ListConflictsCall, ResolveConflictCall,
                          ListDeadLettersCall, VerifyCall, SubscribeCall>;

// Raises Failure (method_not_found, invalid_params) with a message naming
// the method or the param and what is expected.
Call parse_call(const Request& request);

// Every method name, for `hello`.
const std::vector<std::string>& method_names();

}  // namespace lestash::rpc
