// Catch's runner for unit_tests and integration_tests, compiled once for
// both (Catch's implementation is most of a test build's single slowest
// file), with exit 77 for a run in which a test case skipped and none
// failed (skip.hpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.hpp"

int main(int argc, char** argv) {
    const int failed = Catch::Session().run(argc, argv);
    return failed == 0 && lestash::test::test_skipped() ? 77 : failed;
}
