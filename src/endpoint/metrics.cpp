// Counting and printing the endpoint's metrics (see metrics.hpp).
#include "lestash_sync/endpoint/metrics.hpp"

#include <sstream>

namespace lestash {

void EndpointMetrics::request(const std::string& route, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_[{route, status}];
    auto& l = latency_[route];
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
        if (seconds <= kBuckets[i])
            ++l.buckets[i];
    ++l.count;
    l.sum += seconds;
}

void EndpointMetrics::upload(UploadOutcome outcome, std::int64_t ops) {
    std::lock_guard<std::mutex> lock(mutex_);
    switch (outcome) {
        case UploadOutcome::applied:
            ++applied_;
            ops_ += static_cast<std::uint64_t>(ops);
            break;
        case UploadOutcome::duplicate:
            ++duplicates_;
            break;
        case UploadOutcome::dead_lettered:
            ++dead_lettered_;
            break;
    }
}

void EndpointMetrics::media(MediaOutcome outcome, std::int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++media_[static_cast<std::size_t>(outcome)];
    media_bytes_ += static_cast<std::uint64_t>(bytes);
}

std::string EndpointMetrics::text() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::ostringstream out;
    out << "# HELP lestash_endpoint_requests_total HTTP requests answered, by route and status.\n"
           "# TYPE lestash_endpoint_requests_total counter\n";
    for (const auto& [key, n] : requests_)
        out << "lestash_endpoint_requests_total{route=\"" << key.first << "\",status=\""
            << key.second << "\"} " << n << "\n";
    out << "# HELP lestash_endpoint_request_seconds Time to answer a request.\n"
           "# TYPE lestash_endpoint_request_seconds histogram\n";
    for (const auto& [route, l] : latency_) {
        for (std::size_t i = 0; i < kBuckets.size(); ++i)
            out << "lestash_endpoint_request_seconds_bucket{route=\"" << route << "\",le=\""
                << kBuckets[i] << "\"} " << l.buckets[i] << "\n";
        out << "lestash_endpoint_request_seconds_bucket{route=\"" << route << "\",le=\"+Inf\"} "
            << l.count << "\n"
            << "lestash_endpoint_request_seconds_sum{route=\"" << route << "\"} " << l.sum << "\n"
            << "lestash_endpoint_request_seconds_count{route=\"" << route << "\"} " << l.count
            << "\n";
    }
    out << "# HELP lestash_endpoint_transactions_total Phone transactions, by what became of "
           "them.\n"
           "# TYPE lestash_endpoint_transactions_total counter\n"
        << "lestash_endpoint_transactions_total{outcome=\"applied\"} " << applied_ << "\n"
        << "lestash_endpoint_transactions_total{outcome=\"duplicate\"} " << duplicates_ << "\n"
        << "lestash_endpoint_transactions_total{outcome=\"dead_lettered\"} " << dead_lettered_
        << "\n"
        << "# HELP lestash_endpoint_ops_applied_total Ops of applied transactions.\n"
           "# TYPE lestash_endpoint_ops_applied_total counter\n"
        << "lestash_endpoint_ops_applied_total " << ops_ << "\n";
    out << "# HELP lestash_endpoint_media_downloads_total Media file downloads (GET /api/media), "
           "by how they ended.\n"
           "# TYPE lestash_endpoint_media_downloads_total counter\n";
    static constexpr const char* kMediaOutcomes[] = {"complete", "range", "cut", "failed"};
    for (std::size_t i = 0; i < media_.size(); ++i)
        out << "lestash_endpoint_media_downloads_total{outcome=\"" << kMediaOutcomes[i] << "\"} "
            << media_[i] << "\n";
    out << "# HELP lestash_endpoint_media_bytes_total Bytes of media files sent.\n"
           "# TYPE lestash_endpoint_media_bytes_total counter\n"
        << "lestash_endpoint_media_bytes_total " << media_bytes_ << "\n";
    return out.str();
}

}  // namespace lestash
