// Names and the one-line summary of the daemon's state.
#include "lestash_sync/daemon/status.hpp"

namespace lestash {

const char* state_name(DaemonState s) {
    switch (s) {
        case DaemonState::starting:
            return "starting";
        case DaemonState::syncing:
            return "syncing";
        case DaemonState::idle:
            return "idle";
        case DaemonState::offline:
            return "offline";
        case DaemonState::paused:
            return "paused";
        case DaemonState::error:
            return "error";
    }
    return "unknown";
}

std::string DaemonStatus::summary() const {
    std::string out = state_name(state);
    if (state == DaemonState::offline || state == DaemonState::error)
        return out + ": " + detail;
    out += ", " + std::to_string(outbox_depth) + " local change" + (outbox_depth == 1 ? "" : "s") +
           " waiting";
    if (dead_letters > 0)
        out += ", " + std::to_string(dead_letters) + " refused by Postgres";
    const auto moving = media.to_upload + media.to_download + media.waiting;
    if (moving > 0)
        out +=
            ", " + std::to_string(moving) + " media file" + (moving == 1 ? "" : "s") + " to move";
    if (media.missing > 0)
        out += ", " + std::to_string(media.missing) + " media file" +
               (media.missing == 1 ? "" : "s") + " missing";
    return out;
}

}  // namespace lestash
