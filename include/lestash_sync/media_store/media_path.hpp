// Where the app keeps its media files and which paths the daemon will
// touch. item_media.local_path is relative to the `media` folder next to
// lestash.db, `<local item id>/<first 12 hex of sha256><ext>` when the app
// wrote it; a row from elsewhere keeps the origin's path, and the file is
// written at that same relative path here.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace lestash {

// <directory of the database>/media
std::filesystem::path media_root(const std::string& database_path);

// Why `relative` is not a path the daemon may read or write under the media
// folder (absolute, empty, `.` or `..` parts, a backslash, a NUL, a
// trailing slash), or empty when it is fine. A row pulled from elsewhere
// can say anything; nothing outside the media folder is ever touched.
std::string media_path_problem(std::string_view relative);

// The 12 hex digits a file name following the app's pattern starts with
// (`3f2a9c0d1b4e.jpg`), or empty when the name does not follow it.
std::string name_digest_prefix(std::string_view relative);

// The Content-Type a server gives the file, from its extension (any case):
// the app's attachments (images, PDFs, audio, video, text), else
// application/octet-stream.
std::string media_content_type(std::string_view relative);

// Where a download is written before it is verified and renamed into
// place: `.<name>.lestash-partial` beside the target.
std::filesystem::path partial_path(const std::filesystem::path& target);

}  // namespace lestash
