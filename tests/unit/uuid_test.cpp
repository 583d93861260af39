#include <catch2/catch.hpp>

#include "lestash_sync/uuid.hpp"

using namespace lestash;

TEST_CASE("name-based UUIDs match RFC 4122 version 5", "[uuid]") {
    // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
    CHECK(name_based_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org") ==
          "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

TEST_CASE("SHA-1 matches the FIPS 180 test vectors", "[uuid]") {
    auto hex = [](const auto& d) {
        std::string s;
        for (auto b : d) {
            s += "0123456789abcdef"[b >> 4];
            s += "0123456789abcdef"[b & 15];
        }
        return s;
    };
    CHECK(hex(sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(hex(sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
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
