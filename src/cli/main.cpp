// lestash-sync: talks to the running lestash-syncd over its control socket.
// Readable output by default (colour only on a terminal), --json for
// scripts. Exit codes: 0 ok, 1 the daemon reported an error, 2 usage (or a
// config file that names the socket and is wrong), 3 verify found
// differences, 4 timed out, 69 the daemon is not running.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/control/control_client.hpp"
#include "lestash_sync/control/rpc.hpp"
#include "lestash_sync/daemon/command_line.hpp"
#include "lestash_sync/daemon/config.hpp"
#include "lestash_sync/daemon/paths.hpp"

namespace {

using json = nlohmann::json;

constexpr int kExitError = 1, kExitUsage = 2, kExitDifferent = 3, kExitTimedOut = 4,
              kExitNotRunning = 69;

struct Style {
    bool colour = false;
    std::string bold(const std::string& s) const { return colour ? "\033[1m" + s + "\033[0m" : s; }
    std::string dim(const std::string& s) const { return colour ? "\033[2m" + s + "\033[0m" : s; }
    std::string red(const std::string& s) const { return colour ? "\033[31m" + s + "\033[0m" : s; }
    std::string green(const std::string& s) const {
        return colour ? "\033[32m" + s + "\033[0m" : s;
    }
    std::string yellow(const std::string& s) const {
        return colour ? "\033[33m" + s + "\033[0m" : s;
    }
};

Style style_for_stdout() {
    const char* no_colour = std::getenv("NO_COLOR");
    const char* term = std::getenv("TERM");
    return {::isatty(STDOUT_FILENO) && !(no_colour && *no_colour) &&
            !(term && std::string(term) == "dumb")};
}

std::string text(const json& v) {
    if (v.is_null())
        return "";
    if (v.is_string())
        return v.get<std::string>();
    return v.dump();
}

// "5 s ago", "3 min ago"... from an ISO-8601 UTC time the daemon sent.
std::string relative(const json& iso) {
    if (!iso.is_string())
        return "never";
    std::tm tm{};
    if (!::strptime(iso.get<std::string>().c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm))
        return iso.get<std::string>();
    const auto secs = static_cast<long long>(std::difftime(std::time(nullptr), ::timegm(&tm)));
    if (secs < 60)
        return std::to_string(std::max(0LL, secs)) + " s ago";
    if (secs < 3600)
        return std::to_string(secs / 60) + " min ago";
    if (secs < 86400)
        return std::to_string(secs / 3600) + " h ago";
    return std::to_string(secs / 86400) + " days ago";
}

// One line of at most `width` characters (by UTF-8 code point), newlines flattened.
std::string one_line(const std::string& s, std::size_t width) {
    std::string out;
    std::size_t points = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0) != 0x80 && ++points > width) {
            out += "…";
            break;
        }
        out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : s[i];
    }
    return out;
}

std::string fmt_mib(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", bytes / (1024.0 * 1024.0));
    return buf;
}

// "2 to upload, 1 missing, ... (limit 1024 MiB); 3 files, 50.0 MiB in Postgres"
void print_media_status(const json& m) {
    std::string line = text(m["to_upload"]) + " to upload, " + text(m["to_download"]) +
                       " to download, " + text(m["waiting"]) + " waiting, " + text(m["missing"]) +
                       " missing, " + text(m["too_large"]) + " too large";
    for (const char* other : {"failed", "different", "invalid"})
        if (m.value(other, 0) > 0)
            line += ", " + text(m[other]) + " " + other;
    line += " (limit " + text(m["max_file_mb"]) + " MiB); ";
    if (m["upstream_bytes"].is_number())
        line += text(m["upstream_files"]) + " files, " +
                fmt_mib(m["upstream_bytes"].get<double>()) + " MiB in Postgres";
    else
        line += "space in Postgres not known yet";
    std::printf("%-12s %s\n", "media", line.c_str());
}

void print_status(const json& s, const Style& st) {
    const std::string state = s.value("state", "");
    const auto coloured = state == "idle"                          ? st.green(state)
                          : state == "offline" || state == "error" ? st.red(state)
                                                                   : st.yellow(state);
    std::printf("%s %s  %s\n", st.bold("lestash-syncd").c_str(), text(s["version"]).c_str(),
                coloured.c_str());
    if (!text(s["detail"]).empty())
        std::printf("  %s\n", text(s["detail"]).c_str());
    const auto& r = s["replica"];
    std::printf("%-12s %s (%s)\n", "replica", text(r["name"]).c_str(), text(r["id"]).c_str());
    std::printf("%-12s %s\n", "database", text(s["database"]).c_str());
    const auto& pg = s["postgres"];
    if (pg["target"].is_null())
        std::printf("%-12s not configured (capturing locally only)\n", "postgres");
    else
        std::printf("%-12s %s (%s, schema %s)\n", "postgres", text(pg["target"]).c_str(),
                    pg.value("connected", false) ? "connected" : "not connected",
                    text(pg["schema_version"]).c_str());
    const auto& lp = s["last_push"];
    std::printf("%-12s %s (%s changes)\n", "last push", relative(lp["at"]).c_str(),
                text(lp["counts"]["changes"]).c_str());
    const auto& ll = s["last_pull"];
    std::printf("%-12s %s (%s applied, %s deleted)\n", "last pull", relative(ll["at"]).c_str(),
                text(ll["counts"]["applied"]).c_str(), text(ll["counts"]["deleted"]).c_str());
    std::printf("%-12s %s waiting, oldest %.0f s\n", "outbox", text(s["outbox_depth"]).c_str(),
                s.value("lag_seconds", 0.0));
    std::printf("%-12s %s since start; %s changes refused by Postgres\n", "errors",
                text(s["errors_since_start"]).c_str(), text(s["dead_letters"]).c_str());
    const auto list = [](const json& names) {
        std::string out;
        for (const auto& n : names) out += (out.empty() ? "" : ", ") + text(n);
        return out;
    };
    if (!s.value("waiting_tables", json::array()).empty())
        std::printf("%-12s %s (not in the database yet; they sync once Le Stash creates them)\n",
                    "waiting", list(s["waiting_tables"]).c_str());
    if (!s.value("unsynced_tables", json::array()).empty())
        std::printf("%-12s %s (unknown to lestash-sync: they stay on this device)\n", "not synced",
                    list(s["unsynced_tables"]).c_str());
    if (s.contains("media"))
        print_media_status(s["media"]);
}

// A progress bar on stderr, only when stderr is a terminal.
void progress(const json& note) {
    if (!::isatty(STDERR_FILENO))
        return;
    const auto& p = note["params"];
    const int done = p.value("done", 0), total = std::max(1, p.value("total", 1));
    const int width = 30, filled = width * done / total;
    std::fprintf(stderr, "\r[%s%s] %d/%d %-14s",
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), done, total,
                 text(p["table"]).c_str());
    if (done == total)
        std::fprintf(stderr, "\r%*s\r", width + 30, "");
    std::fflush(stderr);
}

std::string describe_event(const json& e) {
    const std::string type = e.value("type", "");
    const auto& c = e.contains("counts") ? e["counts"] : json::object();
    if (type == "pushed")
        return "pushed " + text(c["changes"]) + " changes (" + text(c["rows"]) + " rows, " +
               text(c["deleted"]) + " deleted" +
               (c.value("refused", 0) ? ", " + text(c["refused"]) + " refused" : "") + ")";
    if (type == "pulled")
        return "pulled " + text(c["applied"]) + " rows, " + text(c["deleted"]) + " deleted" +
               (c.value("held", 0) ? ", " + text(c["held"]) + " held for local edits" : "");
    if (type == "state")
        return "state " + text(e["previous"]) + " -> " + text(e["state"]) +
               (text(e["detail"]).empty() ? "" : ": " + text(e["detail"]));
    return e.dump();
}

void print_event(const json& e, bool as_json) {
    if (as_json) {
        std::printf("%s\n", e.dump().c_str());
    } else {
        std::string at = text(e["at"]);
        if (at.size() >= 19)
            at = at.substr(11, 8);
        std::printf("%s %s\n", at.c_str(), describe_event(e).c_str());
    }
    std::fflush(stdout);
}

void print_json(const json& j) {
    std::printf("%s\n", j.dump(2).c_str());
}

// Everything the command line can say.
struct Options {
    std::optional<std::string> socket, config;  // unset: found as the daemon finds it
    bool as_json = false;
    bool wait = false;  // now
    double timeout_s = 60;
    std::vector<std::string> words;  // search
    int limit = 20, offset = 0;
    std::string source;
    std::string item;  // show, history
    int history_limit = 50;
    bool all = false;  // conflicts
    std::int64_t conflict_id = 0;
    std::string keep;
    bool repair = false;  // verify
    bool follow = false;  // log
};

// One subcommand: asks the daemon, prints the answer, returns the exit code.
using Command = std::function<int(lestash::ControlClient&, const Options&, const Style&)>;

int run_status(lestash::ControlClient& client, const Options& o, const Style& st) {
    const auto s = client.call("status");
    o.as_json ? print_json(s) : print_status(s, st);
    return 0;
}

int run_now(lestash::ControlClient& client, const Options& o, const Style&) {
    const auto ms = static_cast<std::int64_t>(o.timeout_s * 1000);
    const auto r = client.call("sync.now", {{"wait", o.wait}, {"timeout_ms", ms}}, {},
                               std::chrono::milliseconds(ms + 30000));
    if (o.as_json)
        print_json(r);
    else if (o.wait)
        std::printf("caught up: %s\n", text(r["status"]["summary"]).c_str());
    else
        std::printf("sync requested\n");
    return 0;
}

Command run_pause_or_resume(bool pause) {
    return [pause](lestash::ControlClient& client, const Options& o, const Style&) {
        const auto r = client.call(pause ? "sync.pause" : "sync.resume");
        o.as_json ? print_json(r)
                  : (void)std::printf(
                        "%s\n",
                        pause ? "paused: changes are captured and wait in the outbox" : "resumed");
        return 0;
    };
}

int run_search(lestash::ControlClient& client, const Options& o, const Style& st) {
    std::string query;
    for (const auto& w : o.words) query += (query.empty() ? "" : " ") + w;
    json params = {{"query", query}, {"limit", o.limit}, {"offset", o.offset}};
    if (!o.source.empty())
        params["source"] = o.source;
    params["highlight"] = st.colour ? json{"\033[1;33m", "\033[0m"} : json{"[", "]"};
    const auto r = client.call("items.search", params);
    if (o.as_json) {
        print_json(r);
        return 0;
    }
    for (const auto& h : r["hits"]) {
        std::printf("%s %s %s\n", st.bold(std::to_string(h.value("id", 0))).c_str(),
                    st.dim("[" + text(h["source_type"]) + "]").c_str(),
                    one_line(text(h["title"]), 70).c_str());
        std::printf("    %s\n", one_line(text(h["snippet"]), 200).c_str());
    }
    const auto total = r.value("total", 0), shown = static_cast<int>(r["hits"].size());
    std::printf("%s\n", st.dim(total == 0 ? "no matches"
                                          : std::to_string(o.offset + 1) + "-" +
                                                std::to_string(o.offset + shown) + " of " +
                                                std::to_string(total) + " matches")
                            .c_str());
    return 0;
}

int run_show(lestash::ControlClient& client, const Options& o, const Style& st) {
    const auto r = client.call("items.get", {{"id", o.item}});
    if (o.as_json) {
        print_json(r);
        return 0;
    }
    std::printf("%s %s\n",
                st.bold(text(r["title"]).empty() ? "(untitled)" : text(r["title"])).c_str(),
                st.dim("#" + text(r["id"]) + " " + text(r["uuid"])).c_str());
    for (const char* k :
         {"source_type", "source_id", "url", "author", "created_at", "fetched_at", "parent_id"})
        if (r.contains(k) && !r[k].is_null())
            std::printf("%-12s %s\n", k, text(r[k]).c_str());
    std::string tags;
    for (const auto& t : r["tags"]) tags += (tags.empty() ? "" : ", ") + text(t);
    std::printf("%-12s %s\n%-12s %s\n\n%s\n", "tags", tags.empty() ? "-" : tags.c_str(), "history",
                (text(r["history_count"]) + " earlier versions").c_str(),
                text(r["content"]).c_str());
    return 0;
}

int run_history(lestash::ControlClient& client, const Options& o, const Style&) {
    const auto r = client.call("items.history", {{"id", o.item}, {"limit", o.history_limit}});
    if (o.as_json) {
        print_json(r);
    } else if (r["history"].empty()) {
        std::printf("no history for item %s\n", o.item.c_str());
    } else {
        for (const auto& h : r["history"])
            std::printf(
                "%s  %-8s %-10s %s\n", text(h["changed_at"]).c_str(),
                text(h["change_type"]).c_str(), text(h["change_reason"]).c_str(),
                one_line("title: " + text(h["title_old"]) + " | " + text(h["content_old"]), 90)
                    .c_str());
    }
    return 0;
}

int run_resolve(lestash::ControlClient& client, const Options& o, const Style&) {
    const auto r = client.call("conflicts.resolve", {{"id", o.conflict_id}, {"keep", o.keep}});
    o.as_json ? print_json(r)
              : (void)std::printf("conflict %lld: %s\n", static_cast<long long>(o.conflict_id),
                                  text(r["resolution"]).c_str());
    return 0;
}

void print_conflict(const json& c, const Style& st) {
    std::printf("%s %s.%s of %s%s  %s\n", st.bold("#" + text(c["id"])).c_str(),
                text(c["table"]).c_str(), text(c["column"]).c_str(),
                c["local_id"].is_null() ? text(c["row_uuid"]).c_str()
                                        : ("row " + text(c["local_id"])).c_str(),
                c["title"].is_null() ? "" : (" \"" + one_line(text(c["title"]), 40) + "\"").c_str(),
                st.dim(relative(c["detected_at"]) +
                       (c["resolution"].is_null() ? "" : ", " + text(c["resolution"])))
                    .c_str());
    for (const auto& [label, side] :
         {std::pair{"kept:       ", "winner"}, std::pair{"overwritten:", "loser"}})
        std::printf(
            "    %s %s  (from %s)\n", label, one_line(text(c[side]["value"]), 70).c_str(),
            text(c[side]["replica"]).empty() ? "another writer" : text(c[side]["replica"]).c_str());
}

int run_conflicts(lestash::ControlClient& client, const Options& o, const Style& st) {
    const auto r = client.call("conflicts.list", {{"all", o.all}});
    if (o.as_json) {
        print_json(r);
    } else if (r["conflicts"].empty()) {
        std::printf("no %sconflicts\n", o.all ? "" : "open ");
    } else {
        for (const auto& c : r["conflicts"]) print_conflict(c, st);
        std::printf(
            "%s\n",
            st.dim("resolve with: lestash-sync conflicts resolve ID --keep winner|loser").c_str());
    }
    return 0;
}

int run_dead_letters(lestash::ControlClient& client, const Options& o, const Style& st) {
    const auto r = client.call("dead_letters.list");
    if (o.as_json) {
        print_json(r);
        return 0;
    }
    if (r["local"].empty() && r["phones"].empty()) {
        std::printf("no dead letters: every change reached Postgres\n");
        return 0;
    }
    for (const auto& d : r["local"])
        std::printf("%s %s %s of %s  %s\n    refused: %s\n",
                    st.bold("local #" + text(d["id"])).c_str(), text(d["op"]).c_str(),
                    text(d["table"]).c_str(), text(d["row_uuid"]).c_str(),
                    st.dim(text(d["failed_at"])).c_str(), one_line(text(d["error"]), 100).c_str());
    for (const auto& d : r["phones"])
        std::printf("%s transaction %s from %s (%d ops)  %s\n    refused%s: %s [%s]\n",
                    st.bold("phone #" + text(d["id"])).c_str(), text(d["transaction_id"]).c_str(),
                    (d["replica"].is_null() ? text(d["device"]) : text(d["replica"])).c_str(),
                    static_cast<int>(d["ops"].size()), st.dim(relative(d["at"])).c_str(),
                    d["failed_op"].is_null() ? "" : (" at op " + text(d["failed_op"])).c_str(),
                    one_line(text(d["error"]), 100).c_str(), text(d["sqlstate"]).c_str());
    std::printf("%s\n", st.dim("the phones' transactions were not applied; their ops are in "
                               "lestash-sync --json dead-letters")
                            .c_str());
    return 0;
}

int run_verify(lestash::ControlClient& client, const Options& o, const Style& st) {
    const auto r = client.call("verify", {{"repair", o.repair}}, progress, std::chrono::hours(6));
    if (o.as_json) {
        print_json(r);
        return r.value("matches", false) || o.repair ? 0 : kExitDifferent;
    }
    for (const auto& t : r["tables"]) {
        const std::string repaired = o.repair && !t.value("matches", false)
                                         ? " (repaired: " + text(t["pushed"]) + " pushed, " +
                                               text(t["fetched"]) + " fetched)"
                                         : "";
        std::printf(
            "%-16s %7s local %7s upstream  %s%s\n", text(t["table"]).c_str(),
            text(t["local_rows"]).c_str(), text(t["upstream_rows"]).c_str(),
            t.value("matches", false)
                ? st.green("same").c_str()
                : st.red(std::to_string(t["missing_locally"].size()) + " missing here, " +
                         std::to_string(t["missing_upstream"].size()) + " missing upstream, " +
                         std::to_string(t["different"].size()) + " different")
                      .c_str(),
            repaired.c_str());
    }
    if (r.contains("media")) {
        const auto& m = r["media"];
        std::printf(
            "%-13s %7s named %s\n", "media files", text(m["files"]).c_str(),
            m.value("matches", false)
                ? st.green("same").c_str()
                : st.red(std::to_string(m["missing_locally"].size()) + " missing here, " +
                         std::to_string(m["missing_upstream"].size()) + " missing upstream, " +
                         std::to_string(m["different"].size()) + " different")
                      .c_str());
        if (!m["unavailable"].empty())
            std::printf("%zu media files are nowhere (lost where they were made?)\n",
                        m["unavailable"].size());
    }
    if (r.value("pending_local_rows", 0) > 0)
        std::printf("%s local changes not pushed yet were left out\n",
                    text(r["pending_local_rows"]).c_str());
    if (!r.value("matches", false) && !o.repair)
        std::printf(
            "run `lestash-sync verify --repair`: values Postgres never had are pushed, newer "
            "ones fetched\n");
    return r.value("matches", false) || o.repair ? 0 : kExitDifferent;
}

int run_log(lestash::ControlClient& client, const Options& o, const Style&) {
    const auto r = client.call("events.subscribe");
    for (const auto& e : r["recent"]) print_event(e, o.as_json);
    if (r["recent"].empty() && !o.follow && !o.as_json)
        std::printf("no sync events since the daemon started\n");
    if (o.follow)
        client.follow([&](const json& n) {
            if (n.value("method", "") == "event")
                print_event(n["params"], o.as_json);
            return true;
        });
    return 0;
}

int run_metrics(lestash::ControlClient& client, const Options& o, const Style&) {
    const auto r = client.call("metrics");
    o.as_json ? print_json(r) : (void)std::printf("%s", text(r["text"]).c_str());
    return 0;
}

// Subcommands and their flags, in the order they are tried: a nested one
// (conflicts resolve) before its parent.
std::vector<std::pair<CLI::App*, Command>> add_commands(CLI::App& app, Options& o) {
    std::vector<std::pair<CLI::App*, Command>> out;
    out.emplace_back(app.add_subcommand("status", "the daemon's state and counters"), run_status);

    auto* now = app.add_subcommand("now", "sync now");
    now->add_flag("--wait", o.wait, "block until caught up (outbox empty, everything pulled)");
    now->add_option("--timeout", o.timeout_s, "seconds to wait with --wait")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 86400.0));
    out.emplace_back(now, run_now);
    out.emplace_back(app.add_subcommand("pause", "stop syncing (changes keep being captured)"),
                     run_pause_or_resume(true));
    out.emplace_back(app.add_subcommand("resume", "sync again after pause"),
                     run_pause_or_resume(false));

    auto* search = app.add_subcommand("search", "full-text search of this replica (FTS5 syntax)");
    search->add_option("query", o.words, "search terms (FTS5 query syntax)")->required();
    search->add_option("--limit", o.limit, "results to show")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    search->add_option("--offset", o.offset, "results to skip")->check(CLI::NonNegativeNumber);
    search->add_option("--source", o.source, "only items of this source type");
    out.emplace_back(search, run_search);

    auto* show = app.add_subcommand("show", "one item with its tags");
    show->add_option("item", o.item, "the item's number or UUID")->required();
    out.emplace_back(show, run_show);
    auto* history = app.add_subcommand("history", "an item's history, newest first");
    history->add_option("item", o.item, "the item's number or UUID")->required();
    history->add_option("--limit", o.history_limit, "rows to show")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    out.emplace_back(history, run_history);

    auto* conflicts =
        app.add_subcommand("conflicts", "concurrent edits of the same column (open ones)");
    conflicts->add_flag("--all", o.all, "include resolved conflicts");
    auto* resolve = conflicts->add_subcommand("resolve", "close a conflict");
    resolve->add_option("id", o.conflict_id, "the conflict's number")->required();
    resolve
        ->add_option("--keep", o.keep,
                     "winner (keep the current value) or loser (restore the overwritten one)")
        ->required()
        ->check(CLI::IsMember({"winner", "loser"}));
    out.emplace_back(resolve, run_resolve);
    out.emplace_back(conflicts, run_conflicts);

    out.emplace_back(app.add_subcommand("dead-letters",
                                        "changes Postgres refused for good: this replica's and "
                                        "the phones'"),
                     run_dead_letters);
    auto* verify = app.add_subcommand("verify", "compare this replica with Postgres, row by row");
    verify->add_flag("--repair", o.repair, "fetch the rows that differ again");
    out.emplace_back(verify, run_verify);
    auto* log = app.add_subcommand("log", "recent sync events");
    log->add_flag("-f,--follow", o.follow, "keep printing events as they happen");
    out.emplace_back(log, run_log);
    out.emplace_back(app.add_subcommand("metrics", "counters in Prometheus text format"),
                     run_metrics);
    return out;
}

// The daemon's socket, found as the daemon finds it.
std::string socket_path(const Options& o) {
    lestash::CommandLineOverrides where;
    where.config = o.config;
    where.socket = o.socket;
    return lestash::control_socket_path(where);
}

}  // namespace

int main(int argc, char** argv) {
    lestash::CommandLine command_line(
        "lestash-sync", "lestash-sync: status and control of the lestash-syncd daemon");
    CLI::App& app = command_line.app();
    app.require_subcommand(1);
    Options o;
    app.add_option("--socket", o.socket,
                   "the daemon's control socket (default: [control] socket in the config file, "
                   "else " +
                       lestash::default_socket_path() + ")");
    app.add_option("--config", o.config,
                   "the daemon's config file, read for its [control] socket (default: " +
                       lestash::default_config_path() + " when it exists)");
    app.add_flag("--json", o.as_json, "print the daemon's JSON answer (for scripts)");
    const auto commands = add_commands(app, o);
    if (const auto done = command_line.parse(argc, argv))
        return *done;
    try {
        lestash::ControlClient client(socket_path(o));
        const Style st = style_for_stdout();
        for (const auto& [command, run] : commands)
            if (*command)
                return run(client, o, st);
        return 0;
    } catch (const lestash::ConfigError& e) {
        std::fprintf(stderr, "lestash-sync: %s\n", e.what());
        return kExitUsage;
    } catch (const lestash::DaemonNotRunning& e) {
        std::fprintf(stderr, "lestash-sync: %s\n", e.what());
        return kExitNotRunning;
    } catch (const lestash::RpcError& e) {
        if (o.as_json)
            std::printf("%s\n",
                        json{{"error", {{"code", e.code}, {"message", e.what()}, {"data", e.data}}}}
                            .dump(2)
                            .c_str());
        std::fprintf(stderr, "lestash-sync: %s\n", e.what());
        return e.code == lestash::rpc::timed_out ? kExitTimedOut : kExitError;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lestash-sync: %s\n", e.what());
        return kExitError;
    }
}
