// The version of this build (see include/lestash_sync/daemon/version.hpp).
// LESTASH_VERSION is given to this file alone by CMakeLists.txt.
#include "lestash_sync/daemon/version.hpp"

namespace lestash {

const char* build_version() {
    return LESTASH_VERSION;
}

}  // namespace lestash
