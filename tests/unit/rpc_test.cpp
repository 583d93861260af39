// The control protocol's envelope and param checks (docs/protocol.md).
#include <catch2/catch.hpp>

#include "lestash_sync/control/calls.hpp"

namespace lestash::rpc {
namespace {

int rejected_with(std::string_view line) {
    const auto parsed = parse_request(line);
    const auto* r = std::get_if<Rejection>(&parsed);
    return r ? r->response["error"]["code"].get<int>() : 0;
}

int call_error(const std::string& line) {
    const auto parsed = parse_request(line);
    REQUIRE(std::holds_alternative<Request>(parsed));
    try {
        parse_call(std::get<Request>(parsed));
        return 0;
    } catch (const Failure& f) {
        return f.code;
    }
}

}  // namespace

TEST_CASE("malformed lines are rejected with the JSON-RPC codes, never an exception", "[rpc]") {
    CHECK(rejected_with("{") == parse_error);
    CHECK(rejected_with("") == parse_error);
    CHECK(rejected_with("\"caf\xc3\x28\"") == parse_error);  // invalid UTF-8
    // Regression (fuzzer): a number beyond double threw out_of_range, not parse_error.
    CHECK(rejected_with("{\"jsonrpc\":\"2.0\",\"id\":-1e575,\"method\":\"status\"}") ==
          parse_error);
    CHECK(rejected_with("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}]") ==
          invalid_request);
    CHECK(rejected_with("42") == invalid_request);
    CHECK(rejected_with("{\"id\":1,\"method\":\"status\"}") == invalid_request);
    CHECK(rejected_with("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"status\"}") ==
          invalid_request);
    CHECK(rejected_with("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}") == invalid_request);
    CHECK(rejected_with("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\",\"params\":[1]}") ==
          invalid_request);
    CHECK(rejected_with("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\",\"extra\":1}") ==
          invalid_request);
}

TEST_CASE("a rejection keeps the request's id when it could be read", "[rpc]") {
    const auto parsed = parse_request("{\"jsonrpc\":\"1.0\",\"id\":\"abc\",\"method\":\"status\"}");
    REQUIRE(std::holds_alternative<Rejection>(parsed));
    CHECK(std::get<Rejection>(parsed).response["id"] == "abc");
}

TEST_CASE("requests without an id are notifications", "[rpc]") {
    const auto parsed = parse_request("{\"jsonrpc\":\"2.0\",\"method\":\"status\"}");
    REQUIRE(std::holds_alternative<Request>(parsed));
    CHECK(std::get<Request>(parsed).notification);
}

TEST_CASE("params are checked by name, type and range", "[rpc]") {
    const std::string head = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":";
    CHECK(call_error(head + "\"status\"}") == 0);
    CHECK(call_error(head + "\"nope\"}") == method_not_found);
    CHECK(call_error(head + "\"status\",\"params\":{\"x\":1}}") == invalid_params);
    CHECK(call_error(head + "\"items.search\",\"params\":{}}") == invalid_params);
    CHECK(call_error(head + "\"items.search\",\"params\":{\"query\":\"a\",\"limit\":0}}") ==
          invalid_params);
    CHECK(call_error(
              head +
              "\"items.search\",\"params\":{\"query\":\"a\",\"limit\":18446744073709551615}}") ==
          invalid_params);
    CHECK(
        call_error(head + "\"items.search\",\"params\":{\"query\":\"a\",\"highlight\":[\"<\"]}}") ==
        invalid_params);
    CHECK(call_error(head + "\"items.get\",\"params\":{\"id\":true}}") == invalid_params);
    CHECK(call_error(head + "\"conflicts.resolve\",\"params\":{\"id\":1,\"keep\":\"both\"}}") ==
          invalid_params);
    CHECK(call_error(head + "\"sync.now\",\"params\":{\"wait\":\"yes\"}}") == invalid_params);
    const auto ok = parse_call(std::get<Request>(parse_request(
        head +
        "\"items.search\",\"params\":{\"query\":\"okapi\",\"limit\":5,\"source\":\"note\"}}")));
    const auto& search = std::get<SearchCall>(ok).options;
    CHECK(search.query == "okapi");
    CHECK(search.limit == 5);
    CHECK(search.source_type == "note");
}

TEST_CASE("frames are one line and survive invalid UTF-8 in values", "[rpc]") {
    const auto line = frame(result_response(1, {{"text", std::string("a\nb\xff")}}));
    CHECK(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1);
    CHECK_NOTHROW(json::parse(line));
}

}  // namespace lestash::rpc
