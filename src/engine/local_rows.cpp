// Local rows as the engine reads them (see local_rows.hpp).
#include "local_rows.hpp"

#include <nlohmann/json.hpp>

namespace lestash::detail {

std::string select_row_sql(const TableMapping& m) {
    std::string sql = "SELECT ";
    for (size_t i = 0; i < m.columns.size(); ++i)
        sql += (i ? ", " : "") + sqlite::quote_identifier(m.columns[i].name);
    sql += " FROM " + sqlite::quote_identifier(m.spec->name) + " WHERE ";
    for (size_t i = 0; i < m.spec->local_key.size(); ++i)
        sql += (i ? " AND " : "") + sqlite::quote_identifier(m.spec->local_key[i]) + " = ?";
    return sql;
}

sqlite::Statement& StatementCache::get(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end())
        it = statements_.emplace(sql, std::make_unique<sqlite::Statement>(db_, sql)).first;
    return *it->second;
}

std::optional<std::vector<sqlite::Value>> read_local_row(StatementCache& cache,
                                                         const TableMapping& m,
                                                         const std::vector<sqlite::Value>& key) {
    auto& st = cache.get(select_row_sql(m));
    for (size_t i = 0; i < key.size(); ++i) st.bind(static_cast<int>(i + 1), key[i]);
    std::optional<std::vector<sqlite::Value>> out;
    if (st.step()) {
        out.emplace();
        out->reserve(m.columns.size());
        for (int i = 0; i < st.column_count(); ++i) out->push_back(st.value(i));
    }
    st.reset();
    return out;
}

std::vector<sqlite::Value> link_key_values(const std::string& row_key_json) {
    std::vector<sqlite::Value> out;
    for (const auto& v : nlohmann::json::parse(row_key_json)) {
        if (v.is_number_integer())
            out.emplace_back(v.get<std::int64_t>());
        else if (v.is_string())
            out.emplace_back(v.get<std::string>());
        else
            out.emplace_back(std::monostate{});
    }
    return out;
}

std::string uuid_array_literal(const std::vector<std::string>& uuids) {
    std::string out = "{";
    for (size_t i = 0; i < uuids.size(); ++i) out += (i ? "," : "") + uuids[i];
    return out + "}";
}

}  // namespace lestash::detail
