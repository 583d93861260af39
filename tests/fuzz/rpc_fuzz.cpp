// libFuzzer target for the control protocol: one request line through the
// same code the daemon runs — framing and envelope checks (parse_request),
// method and param checks (parse_call), and the read-only queries (FTS5
// search with arbitrary query syntax and highlight markers, item lookups by
// number or UUID) against a real Le Stash database. A crash, a sanitizer
// report or an exception other than the documented rpc::Failure is a bug.
// Build: CXX=clang++ cmake -DLESTASH_FUZZ=ON ...; run: rpc_fuzz CORPUS_DIR.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <variant>

#include "lestash_sync/control/calls.hpp"
#include "lestash_sync/replica/replica.hpp"

namespace {

using namespace lestash;

// A database with the v11 schema, a few items, tags and history, built once.
Replica& database() {
    static Replica* replica = [] {
        char dir[] = "/tmp/lestash-fuzz-XXXXXX";
        if (!::mkdtemp(dir))
            std::abort();
        auto* r = new Replica(AttachOptions{std::string(dir) + "/lestash.db"});
        r->db().exec(
            "INSERT INTO items (source_type, source_id, title, content, author) VALUES "
            "('note', 'a', 'Zebra crossing', 'the okapi and the zebra', 'me'),"
            "('bookmark', 'b', 'Ünïcödé ✓', 'naïve café — “quotes” 日本語', NULL),"
            "('note', NULL, NULL, '', NULL);"
            "INSERT INTO tags (name) VALUES ('animals');"
            "INSERT INTO item_tags (item_id, tag_id) VALUES (1, 1);"
            "UPDATE items SET content = 'the okapi, the zebra and the quagga' WHERE id = 1;");
        return r;
    }();
    return *replica;
}

void respond(const rpc::Request& request) {
    try {
        const rpc::Call call = rpc::parse_call(request);
        auto& db = database().db();
        if (const auto* s = std::get_if<rpc::SearchCall>(&call)) {
            (void)rpc::frame(rpc::result_response(request.id, queries::search(db, s->options)));
        } else if (const auto* i = std::get_if<rpc::ItemCall>(&call)) {
            (void)rpc::frame(rpc::result_response(
                request.id, i->history ? queries::item_history(db, i->id, i->limit)
                                       : queries::get_item(db, i->id)));
        }
    } catch (const rpc::Failure& f) {
        (void)rpc::frame(rpc::error_response(request.id, f.code, f.what(), f.data));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    auto parsed = rpc::parse_request(line);
    if (const auto* rejection = std::get_if<rpc::Rejection>(&parsed))
        (void)rpc::frame(rejection->response);
    else
        respond(std::get<rpc::Request>(parsed));
    return 0;
}
