// libFuzzer target for the phone endpoint's request checks: the bytes as
// an upload body through parse_upload (the same code the endpoint runs,
// against the tables of migration 001), and as a bearer token through
// verify_token. A crash, a sanitizer report or an exception other than the
// documented RequestError / AuthError is a bug.
// Build: CXX=clang++ cmake -DLESTASH_FUZZ=ON ...; run: upload_fuzz CORPUS_DIR.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "lestash_sync/endpoint/tokens.hpp"
#include "lestash_sync/endpoint/upload_request.hpp"

namespace {

using namespace lestash;

const PhoneSchema& schema() {
    static const PhoneSchema s = [] {
        PhoneSchema out;
        out["items"] = {"items",
                        {{"source_type", PgType::text},
                         {"source_id", PgType::text},
                         {"url", PgType::text},
                         {"title", PgType::text},
                         {"content", PgType::text},
                         {"is_own_content", PgType::boolean},
                         {"metadata", PgType::text},
                         {"parent_id", PgType::uuid}}};
        out["tags"] = {"tags", {{"name", PgType::text}, {"kind", PgType::text}}};
        out["item_tags"] = {"item_tags", {{"item_id", PgType::uuid}, {"tag_id", PgType::uuid}}};
        out["item_history"] = {"item_history",
                               {{"item_id", PgType::uuid},
                                {"content_old", PgType::text},
                                {"parent_id_old", PgType::uuid}}};
        out["sync_log"] = {"sync_log", {{"items_added", PgType::bigint}}};
        out["measures"] = {"measures", {{"ratio", PgType::float8}}};
        return out;
    }();
    return s;
}

const KeySet& keys() {
    static const KeySet k = [] {
        KeySet out;
        out.add(hs256_key("lestash-hs256", base64url_encode(std::string(32, 'k')), "fuzz"));
        return out;
    }();
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        const auto tx = parse_upload(input, schema());
        // What goes to Postgres: every op once, in runs that never go back.
        if (tx.ops_for_postgres.size() > tx.ops)
            std::abort();
        std::int64_t run = -1;
        for (const auto& op : tx.ops_for_postgres) {
            if (op["run"].get<std::int64_t>() < run)
                std::abort();
            run = op["run"].get<std::int64_t>();
        }
    } catch (const RequestError&) {
    }
    try {
        verify_token(input, keys(), "lestash-powersync", 1'800'000'000);
    } catch (const AuthError&) {
    }
    return 0;
}
