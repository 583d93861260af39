// systemd's notify protocol, hand-written (no libsystemd): READY=1,
// STATUS=..., WATCHDOG=1, STOPPING=1 and RELOADING=1 as datagrams to
// $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). A silent
// no-op when the daemon does not run under systemd (Type=notify).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string>

namespace lestash {

class SystemdNotifier {
  public:
    // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID once, now.
    SystemdNotifier();
    ~SystemdNotifier();
    SystemdNotifier(const SystemdNotifier&) = delete;
    SystemdNotifier& operator=(const SystemdNotifier&) = delete;

    // True when NOTIFY_SOCKET names a socket that messages go to.
    bool enabled() const { return fd_ >= 0; }
    // How often systemd expects WATCHDOG=1 (WatchdogSec=), when it expects
    // it from this process; send at about half this interval.
    std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

    // Startup (or a reload) is finished: systemd considers the service up.
    void ready() { send("READY=1"); }
    // One line for `systemctl status`; line breaks become spaces.
    void status(const std::string& text);
    // Still alive; systemd restarts the service when these stop coming.
    void watchdog() { send("WATCHDOG=1"); }
    // Shutting down, e.g. after SIGTERM.
    void stopping() { send("STOPPING=1"); }
    // Re-reading the configuration (SIGHUP); follow with ready().
    void reloading();

  private:
    void send(const std::string& message);

    int fd_ = -1;
    sockaddr_un address_{};
    socklen_t address_length_ = 0;
    std::string address_text_;  // NOTIFY_SOCKET as given, for messages
    std::optional<std::chrono::microseconds> watchdog_;
    bool warned_ = false;
};

}  // namespace lestash
