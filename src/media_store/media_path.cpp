// Paths of media files (see media_path.hpp).
#include "lestash_sync/media_store/media_path.hpp"

#include <cctype>
#include <utility>

namespace lestash {
namespace fs = std::filesystem;

fs::path media_root(const std::string& database_path) {
    const fs::path db(database_path);
    return (db.has_parent_path() ? db.parent_path() : fs::path(".")) / "media";
}

std::string media_path_problem(std::string_view relative) {
    if (relative.empty())
        return "the path is empty";
    if (relative.front() == '/')
        return "the path is absolute";
    if (relative.back() == '/')
        return "the path names a folder";
    if (relative.find('\0') != std::string_view::npos)
        return "the path contains a NUL byte";
    if (relative.find('\\') != std::string_view::npos)
        return "the path contains a backslash";
    for (std::size_t start = 0; start <= relative.size();) {
        const auto end = std::min(relative.find('/', start), relative.size());
        const auto part = relative.substr(start, end - start);
        if (part.empty() || part == "." || part == "..")
            return "the path has an empty, \".\" or \"..\" part";
        start = end + 1;
    }
    return {};
}

std::string name_digest_prefix(std::string_view relative) {
    const auto slash = relative.rfind('/');
    const auto name = relative.substr(slash == std::string_view::npos ? 0 : slash + 1);
    if (name.size() < 12)
        return {};
    for (std::size_t i = 0; i < 12; ++i)
        if (!std::isxdigit(static_cast<unsigned char>(name[i])) ||
            std::isupper(static_cast<unsigned char>(name[i])))
            return {};
    if (name.size() > 12 && name[12] != '.')
        return {};
    return std::string(name.substr(0, 12));
}

std::string media_content_type(std::string_view relative) {
    static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"png", "image/png"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"heic", "image/heic"},
        {"svg", "image/svg+xml"},
        {"pdf", "application/pdf"},
        {"epub", "application/epub+zip"},
        {"mp3", "audio/mpeg"},
        {"m4a", "audio/mp4"},
        {"ogg", "audio/ogg"},
        {"opus", "audio/opus"},
        {"wav", "audio/wav"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
        {"mov", "video/quicktime"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"json", "application/json"},
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"}};
    const auto name = relative.substr(
        relative.rfind('/') == std::string_view::npos ? 0 : relative.rfind('/') + 1);
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0)
        return "application/octet-stream";
    std::string ext(name.substr(dot + 1));
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& [e, type] : kTypes)
        if (ext == e)
            return std::string(type);
    return "application/octet-stream";
}

fs::path partial_path(const fs::path& target) {
    return target.parent_path() / ("." + target.filename().string() + ".lestash-partial");
}

}  // namespace lestash
