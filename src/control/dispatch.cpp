// Routing a request to its method: the call checked and typed first
// (calls.cpp), then run on the loop, the query thread or the sync worker,
// and whatever it raises turned into the error response.
#include <spdlog/spdlog.h>

#include <variant>

#include "lestash_sync/common/error.hpp"
#include "lestash_sync/control/rpc.hpp"
#include "server.hpp"

namespace lestash {

using json = nlohmann::json;

void ControlServer::Impl::dispatch(const std::shared_ptr<Session>& session, rpc::Request request) {
    try {
        const rpc::Call call = rpc::parse_call(request);
        if (stopping)
            throw rpc::Failure(rpc::unavailable, "the daemon is stopping");
        const Caller caller{session, request};
        std::visit([&](const auto& typed) { run(typed, caller); }, call);
    } catch (const rpc::Failure& f) {
        if (!request.notification)
            session->send(rpc::error_response(request.id, f.code, f.what(), f.data));
    }
}

void ControlServer::Impl::reply(const Caller& caller, json result) {
    if (!caller.request.notification)
        caller.session->send(rpc::result_response(caller.request.id, std::move(result)));
}

namespace {

// The response to a request whose work runs off the loop: its result, or
// the error it raised. What is not the client's doing goes to the log too,
// as docs/protocol.md promises: Postgres failing (-32000) as a warning, a
// bug (-32603) as an error.
json answer(const json& id, const std::string& method, const std::function<json()>& work) {
    try {
        return rpc::result_response(id, work());
    } catch (const rpc::Failure& f) {
        return rpc::error_response(id, f.code, f.what(), f.data);
    } catch (const UpstreamError& e) {
        spdlog::warn("control {}: {}", method, e.what());
        return rpc::error_response(id, rpc::unavailable, e.what());
    } catch (const std::exception& e) {
        spdlog::error("control {}: internal error: {}", method, e.what());
        return rpc::error_response(id, rpc::internal_error, e.what());
    }
}

}  // namespace

void ControlServer::Impl::on_query_thread(const std::shared_ptr<Session>& session,
                                          const rpc::Request& request,
                                          std::function<json(sqlite::Connection&)> work) {
    queries.post([this, weak = std::weak_ptr<Session>(session), id = request.id,
                  method = request.method,
                  work = std::move(work)](sqlite::Connection* db, const std::string& error) {
        json response = answer(id, method, [&] {
            if (!db)
                throw rpc::Failure(rpc::unavailable, "cannot read the database: " + error);
            return work(*db);
        });
        asio::post(io, [weak, response = std::move(response)] {
            if (auto s = weak.lock())
                s->send(response);
        });
    });
}

void ControlServer::Impl::on_worker(
    const std::shared_ptr<Session>& session, const rpc::Request& request,
    std::function<json(SyncEngine&, Replica&, const std::function<void(json)>&)> work) {
    worker.run_job(
        [this, weak = std::weak_ptr<Session>(session), id = request.id, method = request.method,
         work = std::move(work)](SyncEngine* engine, Replica& replica, const std::string& offline) {
            auto notify = [&](json message) {
                asio::post(io, [weak, message = std::move(message)] {
                    if (auto s = weak.lock())
                        s->send(message);
                });
            };
            notify(answer(id, method, [&] {
                if (!engine)
                    throw rpc::Failure(rpc::unavailable, offline);
                return work(*engine, replica, notify);
            }));
        });
}

}  // namespace lestash
