// Helpers shared by the benchmarks: realistic content and timing.
#pragma once

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

namespace lestash::bench {

using Clock = std::chrono::steady_clock;

// Note text that indexes like prose: words drawn from a 5,000-word
// vocabulary with a Zipf distribution (a few words very common, most rare),
// in sentences, 1-2 KB per note; deterministic by seed.
class ContentGenerator {
  public:
    explicit ContentGenerator(unsigned seed) : rng_(seed) {
        static const char* syllables[] = {"ka",  "lo",  "mi", "ne", "sa",  "tor", "ven", "ri",
                                          "da",  "pe",  "qu", "ba", "li",  "mon", "gra", "ste",
                                          "ful", "ing", "er", "al", "con", "pro", "ex",  "un"};
        std::mt19937 words_rng(42);
        std::uniform_int_distribution<int> count(1, 4), pick(0, 23);
        double total = 0;
        for (int i = 0; i < 5000; ++i) {
            std::string w;
            for (int k = count(words_rng); k > 0; --k) w += syllables[pick(words_rng)];
            vocabulary_.push_back(w);
            total += 1.0 / (i + 1);
            cumulative_.push_back(total);
        }
        for (auto& c : cumulative_) c /= total;
    }
    std::string next() {
        std::uniform_int_distribution<size_t> len(1024, 2048), sentence(6, 18);
        std::uniform_real_distribution<double> u(0, 1);
        const size_t target = len(rng_);
        std::string out;
        while (out.size() < target) {
            for (size_t n = sentence(rng_); n > 0; --n) {
                const auto it = std::lower_bound(cumulative_.begin(), cumulative_.end(), u(rng_));
                out += vocabulary_[static_cast<size_t>(it - cumulative_.begin())];
                out += n > 1 ? " " : ". ";
            }
        }
        return out;
    }

  private:
    std::mt19937 rng_;
    std::vector<std::string> vocabulary_;
    std::vector<double> cumulative_;
};

inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace lestash::bench
