// One include, chosen per target by tests/CMakeLists.txt: the structure
// test compiles it in each room to show which headers a room can see.
#include LESTASH_PROBE_HEADER
