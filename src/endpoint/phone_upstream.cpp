// The endpoint's calls into Postgres (see phone_upstream.hpp).
#include "lestash_sync/endpoint/phone_upstream.hpp"

#include "lestash_sync/common/value_text.hpp"

namespace lestash {
using nlohmann::json;

UpstreamPool::UpstreamPool(std::string conninfo, std::size_t size)
    : conninfo_(std::move(conninfo)), size_(size == 0 ? 1 : size) {}

UpstreamPool::Lease::Lease(UpstreamPool& p) : pool(p) {
    std::unique_lock<std::mutex> lock(pool.mutex_);
    pool.returned_.wait(lock, [&] { return !pool.idle_.empty() || pool.lent_ < pool.size_; });
    ++pool.lent_;
    if (!pool.idle_.empty()) {
        upstream = std::move(pool.idle_.back());
        pool.idle_.pop_back();
        return;
    }
    lock.unlock();
    try {
        upstream = std::make_unique<Upstream>(pool.conninfo_);
    } catch (...) {
        std::lock_guard<std::mutex> relock(pool.mutex_);
        --pool.lent_;
        pool.returned_.notify_one();
        throw;
    }
}

UpstreamPool::Lease::~Lease() {
    std::lock_guard<std::mutex> lock(pool.mutex_);
    --pool.lent_;
    if (upstream)
        pool.idle_.push_back(std::move(upstream));
    pool.returned_.notify_one();
}

namespace {

std::string bytea(const std::string& bytes) {
    return "\\x" + to_hex(bytes);
}

std::optional<Device> one_device(const pqxx::result& r) {
    if (r.empty())
        return std::nullopt;
    return Device{r[0][0].as<std::string>(), r[0][1].as<std::string>()};
}

}  // namespace

void require_endpoint_schema(Upstream& up) {
    const int version = up.schema_version();
    if (version < kEndpointUpstreamVersion)
        throw UpstreamError(
            "the lestash schema at " + up.target() + " is at version " + std::to_string(version) +
                ", lestash-endpoint needs " + std::to_string(kEndpointUpstreamVersion) +
                " — upgrade it: lestash-syncd migrate --postgres '<admin conninfo>'",
            false);
}

PhoneSchema load_phone_schema(Upstream& up) {
    return up.transact<pqxx::read_transaction>(
        "reading the synced tables at " + up.target(), [](pqxx::read_transaction& tx) {
            PhoneSchema schema;
            for (const auto& r :
                 tx.exec("SELECT tbl, col, data_type FROM lestash.phone_columns()")) {
                auto& table = schema[r[0].as<std::string>()];
                table.name = r[0].as<std::string>();
                table.columns.push_back(
                    {r[1].as<std::string>(), pg_type_from_name(r[2].as<std::string>())});
            }
            return schema;
        });
}

std::string create_device(Upstream& up, const std::string& name, const std::string& code_hash,
                          int valid_minutes) {
    return up.transact("creating device \"" + name + "\" at " + up.target(), [&](pqxx::work& tx) {
        return tx
            .exec_params1("SELECT lestash.create_device($1, $2::bytea, make_interval(mins => $3))",
                          name, bytea(code_hash), valid_minutes)[0]
            .as<std::string>();
    });
}

std::optional<Device> redeem_pairing_code(Upstream& up, const std::string& code_hash,
                                          const std::string& credential_hash) {
    return up.transact("redeeming a pairing code at " + up.target(), [&](pqxx::work& tx) {
        return one_device(tx.exec_params(
            "SELECT device, device_name FROM lestash.redeem_pairing_code($1::bytea, $2::bytea)",
            bytea(code_hash), bytea(credential_hash)));
    });
}

std::optional<Device> device_for_credential(Upstream& up, const std::string& credential_hash) {
    return up.transact("looking up a device credential at " + up.target(), [&](pqxx::work& tx) {
        return one_device(tx.exec_params(
            "SELECT device, device_name FROM lestash.device_for_credential($1::bytea)",
            bytea(credential_hash)));
    });
}

bool device_is_active(Upstream& up, const std::string& device) {
    return up.transact<pqxx::read_transaction>(
        "checking device " + device + " at " + up.target(), [&](pqxx::read_transaction& tx) {
            return tx.exec_params1("SELECT lestash.device_is_active($1::uuid)", device)[0]
                .as<bool>();
        });
}

std::vector<Device> revoke_device(Upstream& up, const std::string& id_or_name) {
    return up.transact(
        "revoking device \"" + id_or_name + "\" at " + up.target(), [&](pqxx::work& tx) {
            std::vector<Device> out;
            for (const auto& r : tx.exec_params(
                     "SELECT device, device_name FROM lestash.revoke_device($1)", id_or_name))
                out.push_back({r[0].as<std::string>(), r[1].as<std::string>()});
            return out;
        });
}

json list_devices(Upstream& up) {
    return up.transact<pqxx::read_transaction>(
        "listing the devices at " + up.target(), [](pqxx::read_transaction& tx) {
            auto time = [](const pqxx::field& f) {
                return f.is_null() ? json(nullptr) : json(f.c_str());
            };
            json out = json::array();
            for (const auto& r : tx.exec(
                     "SELECT device, device_name, state, "
                     "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                     "to_char(paired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                     "to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                     "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                     "FROM lestash.list_devices()"))
                out.push_back({{"id", r[0].c_str()},
                               {"name", r[1].c_str()},
                               {"state", r[2].c_str()},
                               {"created_at", time(r[3])},
                               {"paired_at", time(r[4])},
                               {"last_seen_at", time(r[5])},
                               {"revoked_at", time(r[6])}});
            return out;
        });
}

json apply_phone_transaction(Upstream& up, const std::string& device, const UploadTransaction& t) {
    return up.transact("applying transaction " + std::to_string(t.client_tx) + " of device " +
                           device + " at " + up.target(),
                       [&](pqxx::work& tx) {
                           const auto r = tx.exec_params1(
                               "SELECT lestash.apply_phone_transaction($1::uuid, $2, $3::jsonb)",
                               device, t.client_tx, t.ops_for_postgres.dump());
                           return json::parse(r[0].c_str());
                       });
}

}  // namespace lestash
