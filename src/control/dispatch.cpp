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

void ControlServer::Impl::on_query_thread(const std::shared_ptr<Session>& session,
                                          const rpc::Request& request,
                                          std::function<json(sqlite::Connection&)> work) {
    queries.post([this, weak = std::weak_ptr<Session>(session), id = request.id,
                  work = std::move(work)](sqlite::Connection* db, const std::string& error) {
        json response;
        try {
            if (!db)
                throw rpc::Failure(rpc::unavailable, "cannot read the database: " + error);
            response = rpc::result_response(id, work(*db));
        } catch (const rpc::Failure& f) {
            response = rpc::error_response(id, f.code, f.what(), f.data);
        } catch (const std::exception& e) {
            response = rpc::error_response(id, rpc::internal_error, e.what());
        }
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
        [this, weak = std::weak_ptr<Session>(session), id = request.id, work = std::move(work)](
            SyncEngine* engine, Replica& replica, const std::string& offline) {
            auto notify = [&](json message) {
                asio::post(io, [weak, message = std::move(message)] {
                    if (auto s = weak.lock())
                        s->send(message);
                });
            };
            json response;
            try {
                if (!engine)
                    throw rpc::Failure(rpc::unavailable, offline);
                response = rpc::result_response(id, work(*engine, replica, notify));
            } catch (const rpc::Failure& f) {
                response = rpc::error_response(id, f.code, f.what(), f.data);
            } catch (const UpstreamError& e) {
                response = rpc::error_response(id, rpc::unavailable, e.what());
            } catch (const std::exception& e) {
                response = rpc::error_response(id, rpc::internal_error, e.what());
            }
            notify(std::move(response));
        });
}

}  // namespace lestash
