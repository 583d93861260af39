#include "skip.hpp"

#include <catch2/catch.hpp>
#include <iostream>

namespace lestash::test {

namespace {
bool skipped = false;
}

void skip_test(const std::string& reason) {
    skipped = true;
    std::cout << "skipped: " << reason << std::endl;
    WARN("skipped: " << reason);
}

bool test_skipped() {
    return skipped;
}

}  // namespace lestash::test
