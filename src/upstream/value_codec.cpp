// Exact value mapping between SQLite storage classes and Postgres columns.
#include "lestash_sync/upstream/value_codec.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/common/value_text.hpp"

namespace lestash {

PgType pg_type_from_name(std::string_view t) {
    if (t == "text" || t == "character varying")
        return PgType::text;
    if (t == "bigint" || t == "integer" || t == "smallint")
        return PgType::bigint;
    if (t == "boolean")
        return PgType::boolean;
    if (t == "double precision" || t == "real")
        return PgType::float8;
    if (t == "bytea")
        return PgType::bytea;
    if (t == "uuid")
        return PgType::uuid;
    throw UpstreamError("upstream column type \"" + std::string(t) +
                            "\" cannot be mapped to SQLite — run the lestash-sync migrations "
                            "unchanged",
                        false);
}

const char* pg_type_sql(PgType t) {
    switch (t) {
        case PgType::text:
            return "text";
        case PgType::bigint:
            return "bigint";
        case PgType::boolean:
            return "boolean";
        case PgType::float8:
            return "double precision";
        case PgType::bytea:
            return "bytea";
        case PgType::uuid:
            return "uuid";
    }
    return "text";
}

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        std::uint32_t cp;
        if (c < 0x80) {
            if (c == 0)
                return false;  // Postgres text cannot hold NUL
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size())
            return false;  // truncated sequence
        for (size_t k = 1; k <= n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

namespace {

nlohmann::json override_of(const sqlite::Value& v) {
    switch (v.index()) {
        case 1:
            return {"integer", std::to_string(std::get<1>(v))};
        case 2:
            return {"real", exact_real_text(std::get<2>(v))};
        case 3: {
            const auto& s = std::get<3>(v);
            if (is_valid_utf8(s))
                return {"text", s};
            return {"text-hex", to_hex(s)};
        }
        default:
            return {"blob", to_hex(std::get<sqlite::Blob>(v).bytes)};
    }
}

double parse_real(const std::string& s) {
    if (s == "Infinity")
        return INFINITY;
    if (s == "-Infinity")
        return -INFINITY;
    double d = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
        throw UpstreamError("bad real value from Postgres: " + s, false);
    return d;
}

std::int64_t parse_integer(const std::string& s) {
    std::int64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
        throw UpstreamError("bad integer value from Postgres: " + s, false);
    return v;
}

}  // namespace

EncodedValue encode_value(const sqlite::Value& v, PgType type) {
    if (v.index() == 0)
        return {nullptr, std::nullopt};
    switch (type) {
        case PgType::text:
            if (v.index() == 3 && is_valid_utf8(std::get<3>(v)))
                return {std::get<3>(v), std::nullopt};
            break;
        case PgType::bigint:
            if (v.index() == 1)
                return {std::get<1>(v), std::nullopt};
            break;
        case PgType::boolean:
            if (v.index() == 1 && (std::get<1>(v) == 0 || std::get<1>(v) == 1))
                return {std::get<1>(v) == 1, std::nullopt};
            break;
        case PgType::float8:
            if (v.index() == 2 && std::isfinite(std::get<2>(v)))
                return {std::get<2>(v), std::nullopt};
            break;
        case PgType::bytea:
            if (v.index() == 4)
                return {"\\x" + to_hex(std::get<4>(v).bytes), std::nullopt};
            break;
        case PgType::uuid:
            break;
    }
    return {nullptr, override_of(v)};
}

sqlite::Value decode_value(const std::optional<std::string>& text, PgType type,
                           const nlohmann::json* override_entry) {
    if (!text) {
        if (!override_entry || !override_entry->is_array() || override_entry->size() != 2)
            return std::monostate{};
        const std::string cls = (*override_entry)[0].get<std::string>();
        const std::string val = (*override_entry)[1].get<std::string>();
        if (cls == "integer")
            return parse_integer(val);
        if (cls == "real")
            return parse_real(val);
        if (cls == "text")
            return val;
        if (cls == "text-hex")
            return from_hex(val);
        if (cls == "blob")
            return sqlite::Blob{from_hex(val)};
        throw UpstreamError("unknown storage class \"" + cls + "\" in _sqlite", false);
    }
    switch (type) {
        case PgType::text:
            return *text;
        case PgType::bigint:
            return parse_integer(*text);
        case PgType::boolean:
            return std::int64_t{*text == "t" ? 1 : 0};
        case PgType::float8:
            return parse_real(*text);
        case PgType::bytea:
            if (text->rfind("\\x", 0) != 0)
                throw UpstreamError("bytea not in hex format; set bytea_output = hex", false);
            return sqlite::Blob{from_hex(std::string_view(*text).substr(2))};
        case PgType::uuid:
            return *text;  // translated to a local id by the caller
    }
    return std::monostate{};
}

}  // namespace lestash
