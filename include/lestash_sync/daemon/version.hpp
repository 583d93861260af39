// The version of this build.
#pragma once

namespace lestash {

// PROJECT_VERSION in CMakeLists.txt, the one place it is set: --version,
// the control socket's `hello` and `status`, the man pages and the package
// all show this.
const char* build_version();

}  // namespace lestash
