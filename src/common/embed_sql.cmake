# Generates a C++ source holding every .sql file under migrations/ as a raw
# string literal. Run by CMake at build time (see CMakeLists.txt).
file(GLOB_RECURSE files RELATIVE "${SRC_DIR}" "${SRC_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  file(READ "${SRC_DIR}/${f}" text)
  string(APPEND body "    {\"${f}\", R\"lestash_sql(${text})lestash_sql\"},\n")
endforeach()
file(WRITE "${OUT}.tmp" "// Generated from migrations/ by src/common/embed_sql.cmake. Do not edit.
#include \"lestash_sync/common/embedded_sql.hpp\"

namespace lestash {

const std::vector<EmbeddedSql>& embedded_sql() {
    static const std::vector<EmbeddedSql> files = {
${body}    };
    return files;
}

std::vector<EmbeddedSql> embedded_sql_under(std::string_view folder) {
    std::vector<EmbeddedSql> out;
    for (const auto& f : embedded_sql())
        if (f.name.substr(0, folder.size()) == folder) out.push_back(f);
    return out;
}

}  // namespace lestash
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
