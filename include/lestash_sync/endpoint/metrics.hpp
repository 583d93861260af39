// What the endpoint counts, for GET /metrics in Prometheus' text format:
// requests by route and status, their latency, and the fate of uploaded
// transactions. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace lestash {

enum class UploadOutcome { applied, duplicate, dead_lettered };

class EndpointMetrics {
  public:
    void request(const std::string& route, int status, double seconds);
    void upload(UploadOutcome outcome, std::int64_t ops);
    std::string text() const;

  private:
    static constexpr std::array<double, 10> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                        0.25,  0.5,  1,     2.5,  10};
    struct Latency {
        std::array<std::uint64_t, kBuckets.size()> buckets{};
        std::uint64_t count = 0;
        double sum = 0;
    };
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, std::uint64_t> requests_;
    std::map<std::string, Latency> latency_;
    std::uint64_t applied_ = 0, duplicates_ = 0, dead_lettered_ = 0, ops_ = 0;
};

}  // namespace lestash
