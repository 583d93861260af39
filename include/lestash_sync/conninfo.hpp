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

}  // namespace lestash
