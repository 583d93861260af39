// Exponential backoff with jitter for retrying transient upstream errors:
// 1 s, 2 s, 4 s ... up to a cap, each delay drawn between half and all of
// its step so that many daemons restarting together do not retry in step.
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace lestash {

class Backoff {
  public:
    explicit Backoff(std::chrono::milliseconds cap = std::chrono::seconds(60),
                     std::chrono::milliseconds first = std::chrono::seconds(1))
        : cap_(cap), first_(first), rng_(std::random_device{}()) {}

    // The delay before the next attempt; each call doubles the step.
    std::chrono::milliseconds next();
    void reset() {
        step_ = std::chrono::milliseconds(0);
        attempts_ = 0;
    }
    int attempts() const { return attempts_; }
    // A new cap (a reloaded max_backoff_seconds), for the next delay on.
    void set_cap(std::chrono::milliseconds cap) {
        cap_ = cap;
        step_ = std::min(step_, cap_);
    }

  private:
    std::chrono::milliseconds cap_, first_;
    std::chrono::milliseconds step_{0};
    int attempts_ = 0;
    std::mt19937 rng_;
};

}  // namespace lestash
