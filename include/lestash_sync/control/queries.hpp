// Read-only queries the control API answers from the replica: full-text
// search, one item with its tags, an item's history. Each takes its own
// connection (the daemon keeps a read-only one for them, so a long sync
// never delays a search) and returns the JSON documented in docs/protocol.md.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "lestash_sync/common/sqlite.hpp"

namespace lestash::queries {

using json = nlohmann::json;

struct SearchOptions {
    std::string query;  // FTS5 query syntax
    int limit = 20;
    int offset = 0;
    std::optional<std::string> source_type;
    std::string mark_start = "[", mark_end = "]";  // around matched terms in snippets
    int snippet_tokens = 16;
};

// Ranked by bm25 (best first). Raises rpc::Failure(bad_query) naming the
// problem when FTS5 rejects the query.
json search(sqlite::Connection& db, const SearchOptions& options);
// By local id ("42") or UUID; raises rpc::Failure(not_found).
json get_item(sqlite::Connection& db, const std::string& id_or_uuid);
// The item's history rows, newest first.
json item_history(sqlite::Connection& db, const std::string& id_or_uuid, int limit);

// The local id of an item given as a local id or a UUID, if it exists.
std::optional<std::int64_t> resolve_item(sqlite::Connection& db, const std::string& id_or_uuid);

}  // namespace lestash::queries
