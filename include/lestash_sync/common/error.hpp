// Typed errors raised at the engine's boundaries. Each carries what was being
// done and, where there is one, what the user can do about it; callers print
// what() as is.
#pragma once

#include <stdexcept>
#include <string>

namespace lestash {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The configuration file or a command-line flag is wrong.
class ConfigError : public Error {
  public:
    using Error::Error;
};

// The local SQLite database (the app's lestash.db) could not be used.
class LocalDatabaseError : public Error {
  public:
    using Error::Error;
};

// The Le Stash schema in the local database cannot be mapped to sync.
class SchemaError : public LocalDatabaseError {
  public:
    using LocalDatabaseError::LocalDatabaseError;
};

// Postgres refused, failed or could not be reached.
class UpstreamError : public Error {
  public:
    UpstreamError(const std::string& what, bool transient, std::string sqlstate = {})
        : Error(what), transient_(transient), sqlstate_(std::move(sqlstate)) {}
    // Transient errors (connection lost, serialization failure, deadlock) are
    // retried with backoff; the others are permanent for the change at hand.
    bool transient() const { return transient_; }
    const std::string& sqlstate() const { return sqlstate_; }

  private:
    bool transient_;
    std::string sqlstate_;
};

}  // namespace lestash
