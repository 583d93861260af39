// The phone's upload endpoint over HTTP(S) (cpp-httplib): POST /api/upload
// (one CRUD transaction), POST /api/pair (a pairing code for a device
// credential, once), POST /api/token (a device credential for a short-lived
// PowerSync JWT), GET /api/media/<path> (a media file, streamed from
// Postgres, Range resumes), GET /healthz, GET /metrics. Limits: body size (413),
// read/write timeouts, a fixed number of requests served at once (the rest
// wait in the accept queue). One log line per request: method, path,
// status, milliseconds, device; never a token, credential or code. The
// routes and answers are documented in docs/mobile.md.
#pragma once

#include <memory>

#include "lestash_sync/endpoint/endpoint_config.hpp"

namespace lestash {

class EndpointService {
  public:
    // Checks the upstream schema and reads the synced tables; raises
    // UpstreamError when Postgres is not ready, ConfigError for bad TLS files.
    explicit EndpointService(EndpointConfig config);
    ~EndpointService();
    EndpointService(const EndpointService&) = delete;
    EndpointService& operator=(const EndpointService&) = delete;

    // Binds the configured address; the port (the one chosen, for port 0).
    // Raises ConfigError when it cannot.
    int bind();
    // Serves until stop(); returns when the last request is answered.
    void serve();
    // Thread-safe; from a signal watcher.
    void stop();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace lestash
