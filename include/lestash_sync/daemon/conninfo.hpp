// Postgres connection strings as the user wrote them: checked for syntax
// without connecting (libpq's own parser), and shown only with the password
// hidden. Both libpq forms are understood: keyword=value pairs and
// postgresql:// URIs (including a URI or pairs given as dbname=...).
#pragma once

#include <string>

namespace lestash {

// The conninfo with every password value replaced by ********, for logs,
// status output and error messages.
std::string redact_conninfo(const std::string& conninfo);

// Raises ConfigError when libpq cannot parse `conninfo`. `origin` says where
// it came from and starts the message ("--postgres" or "FILE:LINE"); the
// message never contains the password.
void check_conninfo_syntax(const std::string& conninfo, const std::string& origin);

// libpq waits for ever on a connection whose network went away (a laptop
// that slept, a Wi-Fi change): its connect and TCP timeouts are unset and
// the kernel's keepalive starts after two hours. The daemon's connections
// get these unless the user set them (in the conninfo, in the pg_service.conf
// service it names, or through libpq's environment variable):
//   connect_timeout=10  keepalives_idle=30  keepalives_interval=10
//   keepalives_count=3  tcp_user_timeout=60000 (ms)
// so a dead connection is noticed within about a minute. Returns the
// conninfo with the missing ones appended, in the same form (pairs or URI);
// unchanged when libpq cannot parse it (connecting then says why).
std::string with_network_defaults(const std::string& conninfo);

}  // namespace lestash
