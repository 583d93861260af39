// Paths of media files (see media_path.hpp).
#include "lestash_sync/media/media_path.hpp"

#include <cctype>

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

fs::path partial_path(const fs::path& target) {
    return target.parent_path() / ("." + target.filename().string() + ".lestash-partial");
}

}  // namespace lestash
