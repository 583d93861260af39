// Hex and exact real text (see include/lestash_sync/common/value_text.hpp).
#include "lestash_sync/common/value_text.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace lestash {

std::string to_hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string from_hex(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
            return c - 'A' + 10;
        throw std::invalid_argument("bad hex digit");
    };
    if (hex.size() % 2)
        throw std::invalid_argument("odd hex length");
    std::string out(hex.size() / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    return out;
}

std::string exact_real_text(double d) {
    if (std::isinf(d))
        return d > 0 ? "Infinity" : "-Infinity";
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, d);
    return std::string(buf, r.ptr);
}

std::string tagged_value(const sqlite::Value& v, TextAs text) {
    switch (v.index()) {
        case 1:
            return "i:" + std::to_string(std::get<1>(v));
        case 2:
            return "r:" + exact_real_text(std::get<2>(v));
        case 3:
            return "t:" + (text == TextAs::hex ? to_hex(std::get<3>(v)) : std::get<3>(v));
        case 4:
            return "b:" + to_hex(std::get<4>(v).bytes);
        default:
            return "n";
    }
}

}  // namespace lestash
