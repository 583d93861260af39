// UUID generation: v4 random, and v3 name-based from MD5 (see uuid.hpp).
#include "lestash_sync/common/uuid.hpp"

#include "lestash_sync/common/md5.hpp"
#include "lestash_sync/common/value_text.hpp"

#include <cstring>
#include <random>
#include <stdexcept>

namespace lestash {
namespace {

std::string format_uuid(const std::uint8_t* b) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out += '-';
        out += hex[b[i] >> 4];
        out += hex[b[i] & 15];
    }
    return out;
}

std::array<std::uint8_t, 16> parse_uuid(std::string_view text) {
    if (!is_uuid(text))
        throw std::invalid_argument("not a UUID: " + std::string(text));
    std::array<std::uint8_t, 16> out{};
    int n = 0;
    auto nibble = [](char c) {
        return static_cast<std::uint8_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    };
    for (size_t i = 0; i < text.size(); i += (text[i] == '-') ? 1 : 2) {
        if (text[i] == '-')
            continue;
        out[n++] = static_cast<std::uint8_t>(nibble(text[i]) << 4 | nibble(text[i + 1]));
    }
    return out;
}

}  // namespace

bool is_uuid(std::string_view t) {
    if (t.size() != 36)
        return false;
    for (size_t i = 0; i < t.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        const char c = t[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')))
            return false;
    }
    return true;
}

std::string uuid_to_bytes(std::string_view text) {
    const auto b = parse_uuid(text);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string uuid_from_bytes(std::string_view bytes) {
    if (bytes.size() != 16)
        throw std::invalid_argument("a UUID is 16 bytes");
    return format_uuid(reinterpret_cast<const std::uint8_t*>(bytes.data()));
}

std::string random_uuid() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uint8_t b[16];
    const std::uint64_t hi = rng(), lo = rng();
    std::memcpy(b, &hi, 8);
    std::memcpy(b + 8, &lo, 8);
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
    return format_uuid(b);
}

std::string name_based_uuid(std::string_view namespace_uuid, std::string_view name) {
    const auto ns = parse_uuid(namespace_uuid);
    std::string input(reinterpret_cast<const char*>(ns.data()), ns.size());
    input.append(name);
    const std::string digest = from_hex(md5_hex(input));
    std::uint8_t b[16];
    std::memcpy(b, digest.data(), 16);
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x30);
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
    return format_uuid(b);
}

}  // namespace lestash
