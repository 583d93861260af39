// Small text helpers that more than one room needs.
#pragma once

#include <string>

namespace lestash {

// `s` without its trailing spaces and line breaks (the newline libpq ends
// every message with).
inline std::string trim_end(std::string s) {
    while (!s.empty() &&
           (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
        s.pop_back();
    return s;
}

}  // namespace lestash
