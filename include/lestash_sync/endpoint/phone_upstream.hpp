// The endpoint's side of Postgres: a small pool of connections (one per
// request being served, up to the cap), and one call per thing the endpoint
// asks of the functions of migration 009. Every call goes through
// Upstream::transact, so failures arrive as typed UpstreamErrors: transient
// (the endpoint answers 503, the SDK retries) or not.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lestash_sync/endpoint/upload_request.hpp"
#include "lestash_sync/upstream/upstream.hpp"

namespace lestash {

// The schema version (migrations/postgres) the endpoint needs.
inline constexpr int kEndpointUpstreamVersion = 11;

class UpstreamPool {
  public:
    UpstreamPool(std::string conninfo, std::size_t size);

    // Runs `work(upstream)` on a connection of the pool (waiting while all
    // are in use); a connection whose work failed transiently is dropped.
    template <typename Work>
    auto with(Work&& work) {
        Lease lease(*this);
        try {
            return work(*lease.upstream);
        } catch (const UpstreamError& e) {
            if (e.transient())
                lease.upstream.reset();
            throw;
        }
    }
    const std::string& conninfo() const { return conninfo_; }

  private:
    struct Lease {
        explicit Lease(UpstreamPool& pool);
        ~Lease();
        UpstreamPool& pool;
        std::unique_ptr<Upstream> upstream;
    };
    std::string conninfo_;
    std::size_t size_, lent_ = 0;
    std::vector<std::unique_ptr<Upstream>> idle_;
    std::mutex mutex_;
    std::condition_variable returned_;
};

struct Device {
    std::string id, name;
};

// Raises a permanent UpstreamError telling to migrate when the schema is older.
void require_endpoint_schema(Upstream& up);
PhoneSchema load_phone_schema(Upstream& up);

// A device waiting to be paired with the code whose hash is given; its id.
std::string create_device(Upstream& up, const std::string& name, const std::string& code_hash,
                          int valid_minutes);
std::optional<Device> redeem_pairing_code(Upstream& up, const std::string& code_hash,
                                          const std::string& credential_hash);
std::optional<Device> device_for_credential(Upstream& up, const std::string& credential_hash);
bool device_is_active(Upstream& up, const std::string& device);
std::vector<Device> revoke_device(Upstream& up, const std::string& id_or_name);
// [{id, name, state, created_at, paired_at, last_seen_at, revoked_at}]
nlohmann::json list_devices(Upstream& up);

// lestash.apply_phone_transaction's answer. A device revoked meanwhile is an
// UpstreamError with SQLSTATE 42501.
nlohmann::json apply_phone_transaction(Upstream& up, const std::string& device,
                                       const UploadTransaction& tx);

}  // namespace lestash
