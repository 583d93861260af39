#include <catch2/catch.hpp>

#include "lestash_sync/common/md5.hpp"
#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/common/value_text.hpp"

using namespace lestash;

TEST_CASE("name-based UUIDs match RFC 4122 version 3", "[uuid]") {
    // Python: uuid.uuid3(uuid.NAMESPACE_DNS, "python.org")
    CHECK(name_based_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org") ==
          "6fa459ea-ee8a-3ca4-894e-db77e160355e");
}

TEST_CASE("MD5 matches the RFC 1321 test vectors", "[uuid]") {
    CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
    CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
    CHECK(md5_hex(
              "12345678901234567890123456789012345678901234567890123456789012345678901234567890") ==
          "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("random UUIDs are version 4, distinct and round-trip through bytes", "[uuid]") {
    const auto a = random_uuid(), b = random_uuid();
    CHECK(a != b);
    CHECK(is_uuid(a));
    CHECK(a[14] == '4');
    CHECK(uuid_from_bytes(uuid_to_bytes(a)) == a);
    CHECK_FALSE(is_uuid("not-a-uuid"));
    CHECK_THROWS(uuid_to_bytes("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"));
}

TEST_CASE(
    "a value's tagged text keeps its storage class, TEXT raw for identities and hex for hashes",
    "[uuid]") {
    using sqlite::Blob;
    using sqlite::Value;
    CHECK(tagged_value(Value{std::int64_t{1}}, TextAs::raw) == "i:1");
    CHECK(tagged_value(Value{std::string("1")}, TextAs::raw) == "t:1");
    CHECK(tagged_value(Value{std::string("1")}, TextAs::hex) == "t:31");
    CHECK(tagged_value(Value{0.1}, TextAs::hex) == "r:0.1");
    CHECK(tagged_value(Value{Blob{std::string("\x00\xff", 2)}}, TextAs::raw) == "b:00ff");
    CHECK(tagged_value(Value{}, TextAs::hex) == "n");
}
