#include <catch2/catch.hpp>

#include <memory>

#include "waypoint/http/upstream.h"

using wp::http::UpstreamHttpPool;
using Pending = UpstreamHttpPool::Pending;
using PendingQueue = UpstreamHttpPool::PendingQueue;

namespace {

struct NoCallbacks : wp::http::UpstreamStreamCallbacks, wp::http::UpstreamPoolCallbacks {
  void on_upstream_head(wp::http::ResponseHead&&) override {}
  void on_upstream_body(const uint8_t*, size_t) override {}
  void on_upstream_trailers(wp::http::HeaderMap&&) override {}
  void on_upstream_end() override {}
  void on_upstream_error(wp::http::UpstreamError) override {}
  void on_upstream_drained() override {}
  void on_pool_ready(wp::http::UpstreamStream&) override {}
  void on_pool_failure(wp::hbone::UpstreamFailure) override {}
};

std::unique_ptr<Pending> make(NoCallbacks& cb, const char* cluster) {
  wp::http::UpstreamKey key;
  key.cluster = cluster;
  return std::make_unique<Pending>(key, cb, cb);
}

}  // namespace

TEST_CASE("PendingQueue: first in first out, and a destroyed request leaves its queue", "[http][pool]") {
  NoCallbacks cb;
  int cancelled = 0;
  PendingQueue q([&] { ++cancelled; });
  auto a = make(cb, "a");
  auto b = make(cb, "b");
  auto c = make(cb, "c");
  q.push_back(*a);
  q.push_back(*b);
  q.push_back(*c);
  CHECK(q.size() == 3);
  CHECK(q.front() == a.get());

  b.reset();  // the requester went away: the cancellation
  CHECK(cancelled == 1);
  CHECK(q.size() == 2);
  CHECK(q.pop_front() == a.get());
  CHECK(q.pop_front() == c.get());
  CHECK(q.pop_front() == nullptr);
  CHECK(q.empty());

  // Popped requests are in no queue: destroying them cancels nothing.
  a.reset();
  c.reset();
  CHECK(cancelled == 1);
}

TEST_CASE("PendingQueue: a request moves from one queue to another, and only the last one hears of it",
          "[http][pool]") {
  NoCallbacks cb;
  int first_cancelled = 0;
  int second_cancelled = 0;
  PendingQueue first([&] { ++first_cancelled; });
  PendingQueue second([&] { ++second_cancelled; });
  auto a = make(cb, "a");
  auto b = make(cb, "b");
  first.push_back(*a);
  first.push_back(*b);
  second.push_back(*a);  // a cluster's waiting line hands the request to a tunnel being opened
  CHECK(first.size() == 1);
  CHECK(first.front() == b.get());
  CHECK(second.size() == 1);
  a.reset();
  CHECK(first_cancelled == 0);
  CHECK(second_cancelled == 1);
  CHECK(second.empty());
  CHECK(first.size() == 1);
}

TEST_CASE("PendingQueue: a queue destroyed first leaves its requests safe to destroy", "[http][pool]") {
  NoCallbacks cb;
  int cancelled = 0;
  auto a = make(cb, "a");
  auto b = make(cb, "b");
  {
    PendingQueue q([&] { ++cancelled; });
    q.push_back(*a);
    q.push_back(*b);
    a.reset();
    CHECK(cancelled == 1);
  }
  b.reset();  // its queue is gone: nothing to unlink, nobody to tell
  CHECK(cancelled == 1);
}
