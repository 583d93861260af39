#include <catch2/catch.hpp>
#include <set>

#include "lestash_sync/daemon/backoff.hpp"

using namespace std::chrono;

TEST_CASE("backoff doubles with jitter up to its cap and starts over after reset", "[backoff]") {
    lestash::Backoff b(seconds(8), seconds(1));
    const milliseconds steps[] = {seconds(1), seconds(2), seconds(4), seconds(8), seconds(8)};
    for (auto step : steps) {
        const auto d = b.next();
        CHECK(d >= step / 2);
        CHECK(d <= step);
    }
    CHECK(b.attempts() == 5);
    b.reset();
    CHECK(b.next() <= seconds(1));
}

// The jitter's promise (backoff.hpp): each delay drawn between half and all
// of its step, so daemons that fail together do not retry together. Values
// drawn, not time measured. The bounds below are many standard deviations
// wide for a uniform draw (a false failure is less likely than 1 in 10^12).
TEST_CASE("backoff delays spread evenly over half to all of their step", "[backoff]") {
    lestash::Backoff b(seconds(8), seconds(1));
    for (int i = 0; i < 4; ++i) b.next();  // now at the cap: every step is 8 s
    constexpr int draws = 2000;
    std::set<long long> distinct;
    long long low = 8000, high = 0, sum = 0, lower_half = 0;
    for (int i = 0; i < draws; ++i) {
        const long long ms = b.next().count();
        REQUIRE(ms >= 4000);
        REQUIRE(ms <= 8000);
        distinct.insert(ms);
        low = std::min(low, ms);
        high = std::max(high, ms);
        sum += ms;
        lower_half += ms < 6000;
    }
    CHECK(low < 4100);   // reaches down to half the step
    CHECK(high > 7900);  // and up to all of it
    CHECK(distinct.size() > 1000);
    // Uniform: the mean is 6000 ms (standard error 26 ms), half fall below it.
    CHECK(sum / draws > 5800);
    CHECK(sum / draws < 6200);
    CHECK(lower_half > draws * 2 / 5);
    CHECK(lower_half < draws * 3 / 5);
}

TEST_CASE("two backoffs started together do not retry in step", "[backoff]") {
    lestash::Backoff a(seconds(60)), b(seconds(60));
    int same = 0;
    for (int i = 0; i < 8; ++i) same += a.next() == b.next();
    // Each step has at least 500 possible delays; equal draws are rare.
    CHECK(same <= 2);
}

TEST_CASE("a lowered cap applies to the next delay, a raised one lets the steps grow again",
          "[backoff]") {
    lestash::Backoff b(seconds(60), seconds(1));
    for (int i = 0; i < 6; ++i) b.next();  // steps 1, 2, 4, 8, 16, 32 s
    b.set_cap(seconds(2));
    CHECK(b.next() <= seconds(2));
    CHECK(b.next() >= seconds(1));
    b.set_cap(seconds(60));
    CHECK(b.next() >= seconds(2));  // the step doubles from 2 s: 4 s, half of it at least
    CHECK(b.next() >= seconds(4));
}
