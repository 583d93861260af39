// lestash-endpoint: the phone's upload endpoint (serve), and pairing and
// managing the phones that may use it (pair, devices list, devices revoke).
// Wires the endpoint room to a command line; see docs/mobile.md.
#include <signal.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "lestash_sync/endpoint/endpoint_config.hpp"
#include "lestash_sync/endpoint/endpoint_service.hpp"
#include "lestash_sync/endpoint/phone_upstream.hpp"
#include "lestash_sync/endpoint/secrets.hpp"
#include "lestash_sync/endpoint/terminal_qr.hpp"

#ifndef LESTASH_VERSION
#define LESTASH_VERSION "0.0.0"
#endif

namespace {

using namespace lestash;
using nlohmann::json;

std::string default_config_path() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return std::string(xdg) + "/lestash/endpoint.toml";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.config/lestash/endpoint.toml";
    return "/etc/lestash/endpoint.toml";
}

struct Options {
    std::string config = default_config_path();
    std::string log_level = "info";
    std::string name, url, which;
    bool json = false;
};

int serve(const EndpointConfig& config) {
    // SIGTERM and SIGINT end the service: the requests being served are answered first.
    sigset_t stopping;
    sigemptyset(&stopping);
    sigaddset(&stopping, SIGTERM);
    sigaddset(&stopping, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stopping, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    EndpointService service(config);
    const int port = service.bind();
    spdlog::info("lestash-endpoint {} listening on {}://{}:{} (PowerSync at {})", LESTASH_VERSION,
                 config.tls_cert_file.empty() ? "http" : "https", config.listen, port,
                 config.powersync_url);
    std::thread watcher([&] {
        int sig = 0;
        sigwait(&stopping, &sig);
        spdlog::info("stopping ({})", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        service.stop();
    });
    service.serve();
    ::kill(::getpid(), SIGTERM);  // ends the watcher if serve() returned on its own
    watcher.join();
    return 0;
}

int pair(const EndpointConfig& config, const Options& o) {
    const std::string url = o.url.empty() ? config.public_url : o.url;
    if (url.empty())
        throw ConfigError("no URL for the phone: set endpoint.public_url in " + o.config +
                          " or pass --url https://…");
    const std::string code = new_pairing_code();
    Upstream up(config.conninfo);
    require_endpoint_schema(up);
    const std::string id = create_device(up, o.name, sha256(normalized_pairing_code(code)),
                                         config.pairing_code_minutes);
    const std::string payload = json{{"url", url}, {"code", code}}.dump();
    std::printf("Device \"%s\" (%s) is waiting to be paired.\n\n", o.name.c_str(), id.c_str());
    std::printf("%s\n", terminal_qr(payload).c_str());
    std::printf("Scan the code with the Le Stash app, or type in\n  endpoint: %s\n  code:     %s\n",
                url.c_str(), code.c_str());
    std::printf("The code works once, for %d minutes.\n", config.pairing_code_minutes);
    return 0;
}

int list(const EndpointConfig& config, const Options& o) {
    Upstream up(config.conninfo);
    require_endpoint_schema(up);
    const json devices = list_devices(up);
    if (o.json) {
        std::printf("%s\n", devices.dump(2).c_str());
        return 0;
    }
    if (devices.empty()) {
        std::printf("no devices — pair one: lestash-endpoint pair --name NAME\n");
        return 0;
    }
    for (const auto& d : devices)
        std::printf(
            "%s  %-20s  %-20s  last seen %s\n", d["id"].get<std::string>().c_str(),
            d["name"].get<std::string>().c_str(), d["state"].get<std::string>().c_str(),
            d["last_seen_at"].is_null() ? "never" : d["last_seen_at"].get<std::string>().c_str());
    return 0;
}

int revoke(const EndpointConfig& config, const Options& o) {
    Upstream up(config.conninfo);
    require_endpoint_schema(up);
    const auto revoked = revoke_device(up, o.which);
    if (revoked.empty()) {
        std::fprintf(stderr,
                     "lestash-endpoint: no device \"%s\" that is not revoked already — "
                     "lestash-endpoint devices list shows them\n",
                     o.which.c_str());
        return 1;
    }
    for (const auto& d : revoked)
        std::printf("revoked %s (\"%s\"): its credential and tokens no longer work\n", d.id.c_str(),
                    d.name.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"lestash-endpoint: the phone's upload endpoint for lestash-sync (docs/mobile.md)"};
    app.set_version_flag("--version", std::string("lestash-endpoint ") + LESTASH_VERSION);
    Options o;
    app.add_option("--config", o.config, "the configuration file")->capture_default_str();
    app.add_option("--log-level", o.log_level, "debug, info, warn or error")->capture_default_str();
    app.require_subcommand(1);
    auto* serve_cmd = app.add_subcommand("serve", "serve uploads from paired phones");
    auto* pair_cmd =
        app.add_subcommand("pair", "make a device and print its one-time pairing code and QR code");
    pair_cmd->add_option("--name", o.name, "the device's name, e.g. \"Pixel 8\"")->required();
    pair_cmd->add_option("--url", o.url,
                         "the endpoint's URL for the phone (default: "
                         "endpoint.public_url)");
    auto* devices = app.add_subcommand("devices", "the paired devices");
    devices->require_subcommand(1);
    auto* list_cmd = devices->add_subcommand("list", "every device and its state");
    list_cmd->add_flag("--json", o.json, "as JSON");
    auto* revoke_cmd = devices->add_subcommand("revoke", "revoke a device at once");
    revoke_cmd->add_option("device", o.which, "its id or name")->required();
    CLI11_PARSE(app, argc, argv);

    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    spdlog::set_level(spdlog::level::from_str(o.log_level));
    try {
        const EndpointConfig config = load_endpoint_config(o.config);
        if (serve_cmd->parsed())
            return serve(config);
        if (pair_cmd->parsed())
            return pair(config, o);
        if (list_cmd->parsed())
            return list(config, o);
        if (revoke_cmd->parsed())
            return revoke(config, o);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "lestash-endpoint: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lestash-endpoint: %s\n", e.what());
        return 1;
    }
    return 0;
}
