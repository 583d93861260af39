// Command lines as people type them (see include/lestash_sync/daemon/command_line.hpp).
#include "lestash_sync/daemon/command_line.hpp"

#include <cstdlib>
#include <string_view>

#include "lestash_sync/daemon/version.hpp"

namespace lestash {
namespace {

// " --socket, --json" ...: the options of `app` a subcommand's --help
// should mention, since they work there too.
std::string global_options(const CLI::App& app) {
    std::string out;
    for (const CLI::Option* o : app.get_options())
        if (o->get_name() != "--help" && o->get_name() != "--version" && !o->get_lnames().empty())
            out += (out.empty() ? "" : ", ") + std::string("--") + o->get_lnames().front();
    return out;
}

// Each subcommand's --help ends with the global options, which CLI11 lists
// only in the program's own --help.
void mention_global_options(CLI::App& app, const std::string& program, const std::string& options) {
    for (CLI::App* sub : app.get_subcommands({})) {
        sub->footer("Global options work here too: " + options + " (see " + program + " --help).");
        mention_global_options(*sub, program, options);
    }
}

bool parse_only() {
    const char* v = std::getenv("LESTASH_PARSE_ONLY");
    return v && std::string_view(v) == "1";
}

}  // namespace

CommandLine::CommandLine(const std::string& program, const std::string& description)
    : app_(description, program) {
    app_.set_version_flag("--version", program + " " + build_version());
    // Subcommands inherit it from the app when they are added: the app's
    // options are then accepted after `lestash-sync status` as well.
    app_.fallthrough();
}

std::optional<int> CommandLine::parse(int argc, char** argv) {
    if (const auto options = global_options(app_); !options.empty())
        mention_global_options(app_, app_.get_name(), options);
    try {
        app_.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; every usage error exits 2.
        return app_.exit(e) == 0 ? 0 : 2;
    }
    if (parse_only())
        return 0;
    return std::nullopt;
}

}  // namespace lestash
