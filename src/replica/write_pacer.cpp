// Pacing the engine's writes (see write_pacer.hpp).
#include "lestash_sync/replica/write_pacer.hpp"

#include <algorithm>
#include <thread>

namespace lestash {

void WritePacer::before_write() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_write_)
        std::this_thread::sleep_for(next_write_ - now);
}

void WritePacer::after_write(std::chrono::steady_clock::duration held) {
    using std::chrono::milliseconds;
    next_write_ =
        std::chrono::steady_clock::now() +
        std::clamp<std::chrono::steady_clock::duration>(held, milliseconds(1), milliseconds(110));
}

}  // namespace lestash
