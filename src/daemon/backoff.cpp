// Exponential backoff with jitter (see include/lestash_sync/daemon/backoff.hpp).
#include "lestash_sync/daemon/backoff.hpp"

#include <algorithm>

namespace lestash {

std::chrono::milliseconds Backoff::next() {
    step_ = step_.count() == 0 ? first_ : std::min(cap_, step_ * 2);
    ++attempts_;
    std::uniform_int_distribution<long long> jitter(step_.count() / 2, step_.count());
    return std::chrono::milliseconds(jitter(rng_));
}

}  // namespace lestash
