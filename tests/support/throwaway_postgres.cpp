#include "throwaway_postgres.hpp"

namespace lestash::test {

ThrowawayPostgres& shared_postgres() {
    static ThrowawayPostgres server;
    return server;
}

}  // namespace lestash::test
