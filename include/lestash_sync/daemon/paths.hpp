// Where things live by default on a desktop: the app's database, the
// daemon's config file and its control socket.
#pragma once

#include <string>

namespace lestash {

// ~/.config/lestash/lestash.db (honours $XDG_CONFIG_HOME).
std::string default_database_path();
// ~/.config/lestash/sync.toml (honours $XDG_CONFIG_HOME).
std::string default_config_path();
// $XDG_RUNTIME_DIR/lestash/syncd.sock, or /tmp/lestash-<uid>/syncd.sock
// when XDG_RUNTIME_DIR is not set.
std::string default_socket_path();

}  // namespace lestash
