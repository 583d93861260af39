// What the endpoint counts, for GET /metrics in Prometheus' text format:
// requests by route and status, their latency, the fate of uploaded
// transactions, and the media files handed out. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace lestash {

enum class UploadOutcome { applied, duplicate, dead_lettered };
// A media download: the whole file sent, a range of it sent, cut because the
// client went away, or stopped by the server (Postgres failed, or the bytes
// upstream do not hash to the file's sha256).
enum class MediaOutcome { complete, range, cut, failed };

class EndpointMetrics {
  public:
    void request(const std::string& route, int status, double seconds);
    void upload(UploadOutcome outcome, std::int64_t ops);
    void media(MediaOutcome outcome, std::int64_t bytes);
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
    std::array<std::uint64_t, 4> media_{};
    std::uint64_t media_bytes_ = 0;
};

}  // namespace lestash
