#include <catch2/catch.hpp>

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
