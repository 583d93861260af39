// Default locations (see include/lestash_sync/daemon/paths.hpp).
#include "lestash_sync/daemon/paths.hpp"

#include <unistd.h>

#include <cstdlib>

namespace lestash {
namespace {

std::string config_dir() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return std::string(xdg) + "/lestash";
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.config/lestash";
}

}  // namespace

std::string default_database_path() {
    return config_dir() + "/lestash.db";
}
std::string default_config_path() {
    return config_dir() + "/sync.toml";
}

std::string default_socket_path() {
    if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run)
        return std::string(run) + "/lestash/syncd.sock";
    return "/tmp/lestash-" + std::to_string(::getuid()) + "/syncd.sock";
}

}  // namespace lestash
