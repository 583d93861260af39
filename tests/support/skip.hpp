// A test case that needs something absent (root, a tool) says why and
// returns; the test binary's main then exits 77 when nothing failed, which
// CTest (SKIP_RETURN_CODE 77) reports as skipped, never as a pass.
#pragma once

#include <string>

namespace lestash::test {

// Prints "skipped: <reason>" and marks this run skipped; return right after.
void skip_test(const std::string& reason);
// Whether a test case of this run called skip_test.
bool test_skipped();

}  // namespace lestash::test
