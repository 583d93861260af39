// The HTTP routes of lestash-endpoint (see endpoint_service.hpp).
#include "lestash_sync/endpoint/endpoint_service.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <shared_mutex>

#include "lestash_sync/common/uuid.hpp"
#include "lestash_sync/endpoint/metrics.hpp"
#include "lestash_sync/endpoint/phone_upstream.hpp"
#include "lestash_sync/endpoint/secrets.hpp"
#include "lestash_sync/endpoint/upload_request.hpp"
#include "lestash_sync/media_store/media_path.hpp"
#include "lestash_sync/media_store/media_reader.hpp"

namespace lestash {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// An answer other than 200, with the message the app logs.
struct Refusal {
    int status;
    std::string message;
};

// What the log line of the request being served says besides the basics.
struct RequestContext {
    const httplib::Request* request = nullptr;
    Clock::time_point start;
    std::string route, device, outcome;
};
thread_local RequestContext current;

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string bearer(const httplib::Request& req) {
    const std::string h = req.get_header_value("Authorization");
    if (h.rfind("Bearer ", 0) != 0 || h.size() <= 7)
        throw Refusal{401, "no credentials: send Authorization: Bearer <token>"};
    return h.substr(7);
}

void answer(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

// The bytes [begin, end) a media request asks for: the whole file without a
// Range, or the one range it names (RFC 9110: `first-`, `first-last` with
// last past the end cut to it, `-suffix`). Anything else is 416, with the
// Content-Range a client needs to ask again.
struct ByteRange {
    std::int64_t begin = 0, end = 0;
    bool partial = false;
};
ByteRange byte_range(const httplib::Ranges& ranges, std::int64_t size, httplib::Response& res) {
    if (ranges.empty())
        return {0, size, false};
    const auto refuse = [&](const std::string& why) {
        res.set_header("Content-Range", "bytes */" + std::to_string(size));
        return Refusal{416, why + " — the file has " + std::to_string(size) +
                                " bytes; resume with Range: bytes=<bytes you have>-"};
    };
    if (ranges.size() > 1)
        throw refuse("one range at a time");
    const auto [first, last] = ranges[0];
    if (first < 0) {  // the last `last` bytes
        if (last <= 0 || size == 0)
            throw refuse("an empty range");
        return {std::max<std::int64_t>(0, size - last), size, true};
    }
    if (first >= size)
        throw refuse("the range starts at byte " + std::to_string(first) + ", at or past the end");
    return {first, last < 0 ? size : std::min<std::int64_t>(last + 1, size), true};
}

}  // namespace

struct EndpointService::Impl {
    EndpointConfig config;
    std::unique_ptr<httplib::Server> http;
    UpstreamPool pool;
    EndpointMetrics metrics;
    std::shared_mutex schema_mutex;
    PhoneSchema schema;
    Clock::time_point schema_read;

    explicit Impl(EndpointConfig c)
        : config(std::move(c)),
          pool(config.conninfo, static_cast<std::size_t>(config.max_concurrent_requests)) {
        pool.with([&](Upstream& up) {
            require_endpoint_schema(up);
            schema = load_phone_schema(up);
        });
        schema_read = Clock::now();
        if (config.tls_cert_file.empty()) {
            http = std::make_unique<httplib::Server>();
        } else {
            auto tls = std::make_unique<httplib::SSLServer>(config.tls_cert_file.c_str(),
                                                            config.tls_key_file.c_str());
            if (!tls->is_valid())
                throw ConfigError("cannot use the TLS certificate " + config.tls_cert_file +
                                  " and key " + config.tls_key_file +
                                  " — check both are PEM files readable by this user and that "
                                  "they belong together");
            http = std::move(tls);
        }
        configure();
    }

    void configure() {
        const int workers = config.max_concurrent_requests;
        http->new_task_queue = [workers] {
            return new httplib::ThreadPool(static_cast<std::size_t>(workers));
        };
        http->set_payload_max_length(config.max_body_bytes);
        http->set_read_timeout(config.read_timeout_seconds, 0);
        http->set_write_timeout(config.write_timeout_seconds, 0);
        http->set_keep_alive_timeout(30);
        route_post("/api/upload",
                   [this](const httplib::Request& q, httplib::Response& r) { upload(q, r); });
        route_post("/api/pair",
                   [this](const httplib::Request& q, httplib::Response& r) { pair(q, r); });
        route_post("/api/token",
                   [this](const httplib::Request& q, httplib::Response& r) { token(q, r); });
        http->Get("/api/token", [this](const httplib::Request& q, httplib::Response& r) {
            serve_route("/api/token", q, r,
                        [this](const auto& req, auto& res) { token(req, res); });
        });
        http->Get(R"(/api/media/(.+))", [this](const httplib::Request& q, httplib::Response& r) {
            serve_route("/api/media", q, r,
                        [this](const auto& req, auto& res) { media(req, res); });
        });
        http->Get("/healthz", [this](const httplib::Request& q, httplib::Response& r) {
            serve_route("/healthz", q, r, [this](const auto&, auto& res) { healthz(res); });
        });
        http->Get("/metrics", [this](const httplib::Request& q, httplib::Response& r) {
            serve_route("/metrics", q, r, [this](const auto&, auto& res) {
                res.set_content(metrics.text(), "text/plain; version=0.0.4");
            });
        });
        http->set_error_handler(httplib::Server::HandlerWithResponse(
            [this](const httplib::Request&, httplib::Response& res) {
                if (!res.body.empty())
                    return httplib::Server::HandlerResponse::Unhandled;
                std::string message = "HTTP " + std::to_string(res.status);
                if (res.status == 413)
                    message =
                        "the body is larger than this endpoint accepts (" +
                        std::to_string(config.max_body_bytes) +
                        " bytes, endpoint.max_body_bytes): split the transaction on the phone, "
                        "or raise the limit";
                else if (res.status == 404)
                    message =
                        "no such route: POST /api/upload, /api/pair, /api/token; GET "
                        "/api/media/<path>, /healthz, /metrics";
                else if (res.status == 416)
                    message =
                        "the Range header is not one range of bytes: resume with Range: "
                        "bytes=<bytes you have>-";
                else if (res.status == 400)
                    message = "not a valid HTTP request";
                answer(res, res.status, {{"error", message}});
                return httplib::Server::HandlerResponse::Handled;
            }));
        http->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
            log_request(req, res);
        });
    }

    template <typename Handler>
    void route_post(const std::string& path, Handler handler) {
        http->Post(path, [this, path, handler](const httplib::Request& q, httplib::Response& r) {
            serve_route(path, q, r, handler);
        });
    }

    // Runs a route's handler: refusals and failures become JSON answers.
    template <typename Handler>
    void serve_route(const std::string& route, const httplib::Request& req, httplib::Response& res,
                     Handler&& handler) {
        current = {&req, Clock::now(), route, "", ""};
        try {
            handler(req, res);
        } catch (const Refusal& r) {
            answer(res, r.status, {{"error", r.message}});
        } catch (const UpstreamError& e) {
            if (e.sqlstate() == "42501") {
                answer(res, 401, {{"error", "this device is not paired or has been revoked"}});
            } else if (e.transient()) {
                res.set_header("Retry-After", "2");
                answer(res, 503,
                       {{"error", std::string("Postgres is unavailable, try again: ") + e.what()}});
            } else {
                spdlog::error("{}: {}", route, e.what());
                answer(res, 500, {{"error", e.what()}});
            }
        } catch (const std::exception& e) {
            spdlog::error("{}: {}", route, e.what());
            answer(res, 500, {{"error", std::string("internal error: ") + e.what()}});
        }
    }

    // The device a valid PowerSync token names.
    std::string authenticated_device(const httplib::Request& req) {
        TokenClaims claims;
        try {
            claims = verify_token(bearer(req), config.trusted, config.audience, unix_now());
        } catch (const AuthError& e) {
            throw Refusal{401, std::string("token refused: ") + e.what()};
        }
        if (!is_uuid(claims.subject))
            throw Refusal{401, "the token's subject is not a paired device's id"};
        current.device = claims.subject;
        if (!pool.with([&](Upstream& up) { return device_is_active(up, claims.subject); }))
            throw Refusal{401, "this device is not paired or has been revoked"};
        return claims.subject;
    }

    UploadTransaction parse(const std::string& body) {
        try {
            std::shared_lock<std::shared_mutex> lock(schema_mutex);
            return parse_upload(body, schema);
        } catch (const RequestError& e) {
            // A table or column added by a migration since the schema was read.
            if (!e.names_unknown() || Clock::now() - schema_read < std::chrono::seconds(2))
                throw Refusal{e.status(), e.what()};
        }
        {
            std::unique_lock<std::shared_mutex> lock(schema_mutex);
            schema = pool.with([](Upstream& up) { return load_phone_schema(up); });
            schema_read = Clock::now();
        }
        try {
            std::shared_lock<std::shared_mutex> lock(schema_mutex);
            return parse_upload(body, schema);
        } catch (const RequestError& e) {
            throw Refusal{e.status(), e.what()};
        }
    }

    void upload(const httplib::Request& req, httplib::Response& res) {
        const std::string device = authenticated_device(req);
        const UploadTransaction tx = parse(req.body);
        json result =
            pool.with([&](Upstream& up) { return apply_phone_transaction(up, device, tx); });
        if (result.contains("dead_lettered")) {
            metrics.upload(UploadOutcome::dead_lettered, 0);
            current.outcome = "dead_lettered tx=" + std::to_string(tx.client_tx);
            spdlog::warn("device {} transaction {} refused by Postgres, kept as dead letter {}: {}",
                         device, tx.client_tx, result["dead_lettered"]["id"].dump(),
                         result["dead_lettered"]["error"].get<std::string>());
        } else if (result.value("already_applied", false)) {
            metrics.upload(UploadOutcome::duplicate, 0);
            current.outcome = "duplicate tx=" + std::to_string(tx.client_tx);
        } else {
            metrics.upload(UploadOutcome::applied, static_cast<std::int64_t>(tx.ops));
            current.outcome =
                "applied tx=" + std::to_string(tx.client_tx) + " ops=" + std::to_string(tx.ops);
        }
        result["transaction_id"] = tx.client_tx;
        answer(res, 200, result);
    }

    void pair(const httplib::Request& req, httplib::Response& res) {
        const json body = json::parse(req.body, nullptr, false);
        if (body.is_discarded() || !body.is_object() || !body.contains("code") ||
            !body["code"].is_string())
            throw Refusal{400,
                          "send {\"code\": \"XXXX-XXXX-XXXX\"}: the pairing code that "
                          "lestash-endpoint pair printed"};
        const std::string code = normalized_pairing_code(body["code"].get<std::string>());
        const std::string credential = new_device_credential();
        const auto device = pool.with([&](Upstream& up) {
            return redeem_pairing_code(up, sha256(code), sha256(credential));
        });
        if (!device)
            throw Refusal{401,
                          "unknown, used or expired pairing code — run lestash-endpoint "
                          "pair again for a new one"};
        current.device = device->id;
        current.outcome = "paired";
        spdlog::info("device {} (\"{}\") paired", device->id, device->name);
        answer(res, 200,
               {{"device_id", device->id},
                {"name", device->name},
                {"credential", credential},
                {"powersync_url", config.powersync_url}});
    }

    void token(const httplib::Request& req, httplib::Response& res) {
        const std::string credential = bearer(req);
        const auto device =
            pool.with([&](Upstream& up) { return device_for_credential(up, sha256(credential)); });
        if (!device)
            throw Refusal{401, "unknown or revoked device credential — pair the phone again"};
        current.device = device->id;
        const std::int64_t now = unix_now(), expires = now + config.token_lifetime_seconds;
        const std::string jwt = sign_token(
            config.signing,
            {{"sub", device->id}, {"aud", config.audience}, {"iat", now}, {"exp", expires}});
        answer(res, 200,
               {{"token", jwt}, {"endpoint", config.powersync_url}, {"expires_at", expires}});
    }

    // GET /api/media/<local_path>: a file an item_media row names, streamed
    // from Postgres a chunk at a time (docs/mobile.md, section 8).
    void media(const httplib::Request& req, httplib::Response& res) {
        // cpp-httplib 0.11 applies a request's Range to whatever answer it is
        // given, a JSON error included (cut to the range, or made a 416).
        // This route answers ranges itself, so it takes them out of the
        // request (a non-const object behind the handler's const reference).
        const httplib::Ranges ranges = req.ranges;
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast)
        const_cast<httplib::Request&>(req).ranges.clear();
        authenticated_device(req);
        const std::string path = req.matches[1];
        if (const auto problem = media_path_problem(path); !problem.empty())
            throw Refusal{400, "not a media path (" + problem +
                                   "): ask for an item_media.local_path as the item's row "
                                   "has it, relative, each part percent-encoded"};
        const MediaLookup found =
            pool.with([&](Upstream& up) { return MediaReader(up).look_up(path); });
        if (!found.referenced)
            throw Refusal{404, "no item's media names " + path +
                                   ": ask for the local_path of a synced item_media row"};
        if (!found.file)
            throw Refusal{404, "media file " + path +
                                   " is not in Postgres yet: the desktop that has it has not "
                                   "uploaded it (offline, the file missing there, or larger "
                                   "than its [media] max_file_mb); try again later"};
        const StoredMedia file = *found.file;
        const ByteRange range = byte_range(ranges, file.size, res);
        res.status = range.partial ? 206 : 200;
        res.set_header("X-Lestash-Sha256", file.sha256);
        res.set_header("ETag", "\"" + file.sha256 + "\"");
        res.set_header("Accept-Ranges", "bytes");
        res.set_header("X-Content-Type-Options", "nosniff");
        if (range.partial)
            res.set_header("Content-Range", "bytes " + std::to_string(range.begin) + "-" +
                                                std::to_string(range.end - 1) + "/" +
                                                std::to_string(file.size));
        const std::string type = media_content_type(path);
        current.outcome = "media " + path + " bytes=" + std::to_string(range.begin) + "-" +
                          std::to_string(range.end) + "/" + std::to_string(file.size);
        if (range.begin == range.end) {  // an empty file
            metrics.media(MediaOutcome::complete, 0);
            res.set_content("", type);
            return;
        }
        res.set_content_provider(
            static_cast<std::size_t>(range.end - range.begin), type,
            [this, file, range](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                return send_media(file, range.begin + static_cast<std::int64_t>(offset),
                                  range.begin + static_cast<std::int64_t>(offset + length),
                                  range.partial, sink);
            });
    }

    // Writes bytes [from, to) of the file to the client as MediaReader
    // reads them, one chunk in memory. False cuts the connection: the client
    // then has fewer bytes than Content-Length said, and never the end of a
    // file whose bytes upstream do not hash to its sha256.
    bool send_media(const StoredMedia& file, std::int64_t from, std::int64_t to, bool partial,
                    httplib::DataSink& sink) {
        std::int64_t sent = 0;
        try {
            const bool finished = pool.with([&](Upstream& up) {
                return MediaReader(up).stream(file, from, to, [&](std::string_view bytes) {
                    if (!sink.write(bytes.data(), bytes.size()))
                        return false;
                    sent += static_cast<std::int64_t>(bytes.size());
                    return true;
                });
            });
            metrics.media(!finished ? MediaOutcome::cut
                          : partial ? MediaOutcome::range
                                    : MediaOutcome::complete,
                          sent);
            if (!finished)
                current.outcome += " cut by the client after " + std::to_string(sent) + " bytes";
            return finished;
        } catch (const std::exception& e) {
            metrics.media(MediaOutcome::failed, sent);
            current.outcome += " stopped after " + std::to_string(sent) + " bytes";
            spdlog::error(
                "media file {} ({}) to device {}: stopped after {} bytes of {}-{}, the "
                "connection cut so the phone drops them: {}",
                file.path, file.sha256, current.device, sent, from, to, e.what());
            return false;
        }
    }

    void healthz(httplib::Response& res) {
        const int version = pool.with([](Upstream& up) { return up.schema_version(); });
        answer(res, 200, {{"status", "ok"}, {"schema_version", version}});
    }

    void log_request(const httplib::Request& req, const httplib::Response& res) {
        const bool ours = current.request == &req;
        const double seconds =
            ours ? std::chrono::duration<double>(Clock::now() - current.start).count() : 0;
        const std::string route = ours ? current.route : "(other)";
        metrics.request(route, res.status, seconds);
        spdlog::info("request method={} path={} status={} ms={:.1f} device={}{}{}", req.method,
                     req.path, res.status, seconds * 1000,
                     ours && !current.device.empty() ? current.device : "-",
                     ours && !current.outcome.empty() ? " " : "", ours ? current.outcome : "");
        current = {};
    }
};

EndpointService::EndpointService(EndpointConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

EndpointService::~EndpointService() = default;

int EndpointService::bind() {
    auto& c = impl_->config;
    const int port = c.port == 0 ? impl_->http->bind_to_any_port(c.listen)
                                 : (impl_->http->bind_to_port(c.listen, c.port) ? c.port : -1);
    if (port <= 0)
        throw ConfigError("cannot listen on " + c.listen + ":" + std::to_string(c.port) +
                          " — is another process using the port? (endpoint.listen, endpoint.port)");
    return port;
}

void EndpointService::serve() {
    impl_->http->listen_after_bind();
}

void EndpointService::stop() {
    impl_->http->stop();
}

}  // namespace lestash
