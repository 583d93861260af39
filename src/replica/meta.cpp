// Every statement on _lestash_sync_meta (see meta.hpp).
#include "lestash_sync/replica/meta.hpp"

namespace lestash {

std::optional<std::string> ReplicaMeta::get(const std::string& key) {
    sqlite::Statement st(db_, "SELECT value FROM _lestash_sync_meta WHERE key = ?");
    st.bind(1, key);
    if (!st.step() || st.is_null(0))
        return std::nullopt;
    return st.text(0);
}

void ReplicaMeta::set(const std::string& key, const std::string& value) {
    sqlite::Statement st(db_,
                         "INSERT OR REPLACE INTO _lestash_sync_meta (key, value) VALUES (?, ?)");
    st.bind_all(key, value).run();
}

void ReplicaMeta::erase(const std::string& key) {
    sqlite::Statement st(db_, "DELETE FROM _lestash_sync_meta WHERE key = ?");
    st.bind(1, key).run();
}

std::vector<std::string> ReplicaMeta::keys_with_prefix(const std::string& prefix) {
    sqlite::Statement st(
        db_, "SELECT key FROM _lestash_sync_meta WHERE substr(key, 1, length(?1)) = ?1");
    st.bind(1, prefix);
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.text(0));
    return out;
}

int ReplicaMeta::objects_version() {
    if (db_.query_int("SELECT count(*) FROM sqlite_master WHERE name = '_lestash_sync_meta'") == 0)
        return 0;
    return static_cast<int>(
        db_.query_int("SELECT value FROM _lestash_sync_meta WHERE key = 'objects_version'"));
}

}  // namespace lestash
