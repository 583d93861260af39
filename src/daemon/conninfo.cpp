// Checking and redacting Postgres connection strings (see
// include/lestash_sync/daemon/conninfo.hpp). The scanner follows libpq's own
// tokenising rules (fe-connect.c: conninfo_parse, conninfo_uri_parse_options)
// so that it finds every password libpq would find, quoted, escaped or
// percent-encoded.
#include "lestash_sync/daemon/conninfo.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/common/text.hpp"

namespace lestash {
namespace {

constexpr std::string_view hidden = "********";

// Where a password sits in the text: [begin, end).
struct Span {
    std::size_t begin, end;
};

bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::size_t uri_prefix_length(std::string_view text) {
    for (std::string_view prefix : {"postgresql://", "postgres://"}) {
        if (text.size() < prefix.size())
            continue;
        const bool same = std::equal(
            prefix.begin(), prefix.end(), text.begin(),
            [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
        if (same)
            return prefix.size();
    }
    return 0;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// %XX sequences decoded; malformed ones kept as they are.
std::string percent_decoded(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 &&
            hex_digit(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

bool looks_like_conninfo(std::string_view value) {
    return uri_prefix_length(value) > 0 || value.find('=') != std::string_view::npos;
}

void find_passwords(std::string_view text, std::size_t base, std::vector<Span>& out);

// postgresql://user:PASSWORD@host/db?password=PASSWORD&...
void find_uri_passwords(std::string_view uri, std::size_t base, std::vector<Span>& out) {
    const std::size_t authority = uri_prefix_length(uri);
    std::size_t after_user_info = authority;
    const std::size_t stop = uri.find_first_of("@/", authority);
    if (stop != std::string_view::npos && uri[stop] == '@') {
        const std::size_t colon = uri.find(':', authority);
        if (colon < stop)
            out.push_back({base + colon + 1, base + stop});
        after_user_info = stop + 1;
    }
    const std::size_t query = uri.find('?', after_user_info);
    if (query == std::string_view::npos)
        return;
    for (std::size_t i = query + 1; i <= uri.size();) {
        std::size_t end = uri.find('&', i);
        if (end == std::string_view::npos)
            end = uri.size();
        const std::string_view param = uri.substr(i, end - i);
        const std::size_t eq = param.find('=');
        if (eq != std::string_view::npos) {
            const std::string name = percent_decoded(param.substr(0, eq));
            if (name == "password")
                out.push_back({base + i + eq + 1, base + end});
        }
        i = end + 1;
    }
}

// One libpq value at text[i]: 'quoted' (with \' escapes) or up to the next
// space (with \ escapes). Advances i past it; returns the unescaped value.
std::string read_value(std::string_view text, std::size_t& i, bool& escaped) {
    std::string value;
    const bool quoted = i < text.size() && text[i] == '\'';
    if (quoted)
        ++i;
    while (i < text.size() && (quoted ? text[i] != '\'' : !is_space(text[i]))) {
        if (text[i] == '\\' && i + 1 < text.size()) {
            ++i;
            escaped = true;
        }
        value += text[i++];
    }
    if (quoted && i < text.size())
        ++i;  // the closing quote
    return value;
}

// host=... password=PASSWORD dbname='...'
void find_keyword_passwords(std::string_view text, std::size_t base, std::vector<Span>& out) {
    std::size_t i = 0;
    auto skip_spaces = [&] {
        while (i < text.size() && is_space(text[i])) ++i;
    };
    for (skip_spaces(); i < text.size(); skip_spaces()) {
        const std::size_t key_begin = i;
        while (i < text.size() && text[i] != '=' && !is_space(text[i])) ++i;
        const std::string_view key = text.substr(key_begin, i - key_begin);
        skip_spaces();
        const bool has_value = i < text.size() && text[i] == '=';
        if (has_value) {
            ++i;
            skip_spaces();
        } else if (key != "password") {
            continue;  // libpq refuses this; "password secret" hides the next word
        }
        const std::size_t value_begin = i;
        bool escaped = false;
        const std::string value = read_value(text, i, escaped);
        if (key == "password") {
            out.push_back({base + value_begin, base + i});
        } else if (key == "dbname" && looks_like_conninfo(value)) {
            // A connection string given as the database name, as libpq's
            // expand_dbname allows: its offsets match ours unless escaped.
            const bool quoted = text[value_begin] == '\'';
            if (!escaped)
                find_passwords(value, base + value_begin + (quoted ? 1 : 0), out);
            else if (value.find("password") != std::string::npos)
                out.push_back({base + value_begin, base + i});
        }
    }
}

void find_passwords(std::string_view text, std::size_t base, std::vector<Span>& out) {
    if (uri_prefix_length(text) > 0)
        find_uri_passwords(text, base, out);
    else
        find_keyword_passwords(text, base, out);
}

// Non-empty spans in order, none inside another.
std::vector<Span> password_spans(std::string_view conninfo) {
    std::vector<Span> spans;
    find_passwords(conninfo, 0, spans);
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin < b.begin; });
    std::vector<Span> kept;
    for (const auto& s : spans)
        if (s.end > s.begin && (kept.empty() || s.begin >= kept.back().end))
            kept.push_back(s);
    return kept;
}

void replace_all(std::string& text, const std::string& what, std::string_view with) {
    for (std::size_t at = text.find(what); at != std::string::npos;
         at = text.find(what, at + with.size()))
        text.replace(at, what.size(), with);
}

// libpq's parse errors quote pieces of the input, which may be the password.
std::string without_passwords(std::string message, const std::string& conninfo) {
    std::vector<std::string> secrets;
    for (const auto& s : password_spans(conninfo)) {
        std::string raw = conninfo.substr(s.begin, s.end - s.begin);
        if (raw.size() >= 2 && raw.front() == '\'')
            secrets.push_back(raw.substr(1, raw.size() - 2));
        secrets.push_back(percent_decoded(raw));
        secrets.push_back(std::move(raw));
    }
    std::sort(secrets.begin(), secrets.end(),
              [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& secret : secrets)
        if (!secret.empty())
            replace_all(message, secret, hidden);
    return message;
}

struct NetworkDefault {
    const char* keyword;
    const char* value;
};
constexpr NetworkDefault kNetworkDefaults[] = {
    {"connect_timeout", "10"}, {"keepalives_idle", "30"},     {"keepalives_interval", "10"},
    {"keepalives_count", "3"}, {"tcp_user_timeout", "60000"},
};

std::string trimmed(std::string_view text) {
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    return std::string(text);
}

// The keywords the [service] section sets, from the first file that has it,
// in libpq's order: PGSERVICEFILE or ~/.pg_service.conf, then
// PGSYSCONFDIR/pg_service.conf (Debian's libpq: /etc/postgresql-common).
std::set<std::string> service_keywords(const std::string& service) {
    std::vector<std::string> files;
    if (const char* f = std::getenv("PGSERVICEFILE"); f && *f)
        files.emplace_back(f);
    else if (const char* home = std::getenv("HOME"); home && *home)
        files.push_back(std::string(home) + "/.pg_service.conf");
    const char* sysconf = std::getenv("PGSYSCONFDIR");
    files.push_back(std::string(sysconf && *sysconf ? sysconf : "/etc/postgresql-common") +
                    "/pg_service.conf");
    for (const auto& path : files) {
        std::ifstream in(path);
        std::set<std::string> found;
        bool inside = false, seen = false;
        for (std::string line; std::getline(in, line);) {
            const std::string text = trimmed(line);
            if (text.empty() || text[0] == '#')
                continue;
            if (text.front() == '[' && text.back() == ']') {
                inside = text.substr(1, text.size() - 2) == service;
                seen = seen || inside;
            } else if (inside && text.find('=') != std::string::npos) {
                found.insert(trimmed(std::string_view(text).substr(0, text.find('='))));
            }
        }
        if (seen)
            return found;
    }
    return {};
}

}  // namespace

std::string with_network_defaults(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* given = PQconninfoParse(conninfo.c_str(), &error);
    if (!given) {
        if (error)
            PQfreemem(error);
        return conninfo;
    }
    std::set<std::string> set_by_user;
    std::string service;
    for (auto* o = given; o->keyword; ++o) {
        if (o->val && *o->val)
            set_by_user.insert(o->keyword);
        if (o->val && std::string_view(o->keyword) == "service")
            service = o->val;
    }
    PQconninfoFree(given);
    if (const char* env = std::getenv("PGSERVICE"); service.empty() && env)
        service = env;
    if (!service.empty())
        set_by_user.merge(service_keywords(service));
    if (PQconninfoOption* defaults = PQconndefaults()) {
        for (auto* o = defaults; o->keyword; ++o) {
            const char* value = o->envvar ? std::getenv(o->envvar) : nullptr;
            if (value && *value)
                set_by_user.insert(o->keyword);
        }
        PQconninfoFree(defaults);
    }

    const bool uri = uri_prefix_length(conninfo) > 0;
    std::string out = conninfo;
    for (const auto& d : kNetworkDefaults) {
        if (set_by_user.count(d.keyword))
            continue;
        if (uri)
            out += (out.find('?') == std::string::npos ? "?" : "&");
        else if (!out.empty() && !is_space(out.back()))
            out += ' ';
        out += std::string(d.keyword) + "=" + d.value;
    }
    return out;
}

std::string redact_conninfo(const std::string& conninfo) {
    std::string out = conninfo;
    const auto spans = password_spans(conninfo);
    for (auto s = spans.rbegin(); s != spans.rend(); ++s)
        out.replace(s->begin, s->end - s->begin, hidden);
    return out;
}

void check_conninfo_syntax(const std::string& conninfo, const std::string& origin) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (options) {
        PQconninfoFree(options);
        return;
    }
    const std::string message = trim_end(error ? error : "out of memory");
    if (error)
        PQfreemem(error);
    throw ConfigError(origin + ": invalid Postgres connection string (" +
                      without_passwords(message, conninfo) +
                      ") — expected libpq keyword=value pairs such as \"host=db.example.org "
                      "dbname=lestash user=me\", a postgresql:// URI, or service=NAME");
}

}  // namespace lestash
