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

// How this binary, and so the programs of its build dir under test, was
// built: some figures mean something else under a sanitizer (TSan's own
// thread wakes ten times a second; ASan's quarantine keeps freed memory).
// gcc names them __SANITIZE_*__, clang answers __has_feature.
#if defined(__has_feature)
#define LESTASH_HAS_FEATURE(x) __has_feature(x)
#else
#define LESTASH_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || LESTASH_HAS_FEATURE(thread_sanitizer)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#if defined(__SANITIZE_ADDRESS__) || LESTASH_HAS_FEATURE(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

}  // namespace lestash::test
