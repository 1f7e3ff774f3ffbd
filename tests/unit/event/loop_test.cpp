#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "waypoint/event/loop.h"

using wp::event::Loop;

namespace {
struct Tracked : wp::event::DeferredDeletable {
  std::vector<std::string>& log;
  explicit Tracked(std::vector<std::string>& l) : log(l) {}
  ~Tracked() override { log.push_back("deleted"); }
};
}  // namespace

TEST_CASE("deferred deletion happens after the current callback, after the scheduled Deferreds", "[event]") {
  Loop loop;
  std::vector<std::string> log;
  wp::event::Deferred task(loop, [&] { log.push_back("task"); });
  wp::event::Timer t(loop, [&] {
    loop.defer_delete(std::make_unique<Tracked>(log));
    task.schedule();
    log.push_back("callback done");
  });
  t.start(std::chrono::milliseconds(1));
  loop.run();
  REQUIRE(log.size() == 3);
  CHECK(log[0] == "callback done");
  CHECK(log[1] == "task");
  CHECK(log[2] == "deleted");
}

TEST_CASE("post() runs functions from other threads on the loop thread", "[event]") {
  Loop loop;
  std::atomic<int> count{0};
  std::thread::id loop_thread;
  wp::event::Timer keepalive(loop, [] {});
  keepalive.start(std::chrono::milliseconds(10), std::chrono::milliseconds(10));
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop.run();
  });
  std::vector<std::thread> posters;
  std::atomic<bool> wrong_thread{false};
  for (int i = 0; i < 4; ++i) {
    posters.emplace_back([&] {
      for (int j = 0; j < 250; ++j) {
        loop.post([&] {
          if (std::this_thread::get_id() != loop_thread) {
            wrong_thread = true;
          }
          if (++count == 1000) {
            loop.stop();
          }
        });
      }
    });
  }
  for (auto& p : posters) {
    p.join();
  }
  runner.join();
  CHECK(count == 1000);
  CHECK_FALSE(wrong_thread);
}

TEST_CASE("a Timer may be destroyed before it fires", "[event]") {
  Loop loop;
  bool fired = false;
  {
    wp::event::Timer t(loop, [&] { fired = true; });
    t.start(std::chrono::milliseconds(1));
  }
  wp::event::Timer later(loop, [] {});
  later.start(std::chrono::milliseconds(5));
  loop.run();
  CHECK_FALSE(fired);
}

TEST_CASE("an adopted object lives until it releases itself, and no longer than the loop", "[event]") {
  std::vector<std::string> log;
  {
    Loop loop;
    auto first = std::make_unique<Tracked>(log);
    Tracked* raw = first.get();
    loop.adopt(std::move(first));
    loop.adopt(std::make_unique<Tracked>(log));  // never released: the loop's teardown frees it
    CHECK(loop.adopted() == 2);
    wp::event::Timer t(loop, [&] {
      loop.release(raw);
      log.push_back("released");
    });
    t.start(std::chrono::milliseconds(1));
    loop.run();
    REQUIRE(log.size() == 2);
    CHECK(log[0] == "released");  // deleted after the callback, not inside it
    CHECK(log[1] == "deleted");
    CHECK(loop.adopted() == 1);
    loop.release(raw);  // a second release is a no-op
  }
  REQUIRE(log.size() == 3);
  CHECK(log[2] == "deleted");
}

TEST_CASE("a Deferred runs once after the callback that scheduled it, in order, and coalesces", "[event]") {
  Loop loop;
  std::vector<std::string> log;
  wp::event::Deferred a(loop, [&] { log.push_back("a"); });
  wp::event::Deferred b(loop, [&] { log.push_back("b"); });
  wp::event::Timer t(loop, [&] {
    b.schedule();
    a.schedule();
    b.schedule();  // pending already: nothing more
    CHECK(a.pending());
    log.push_back("callback done");
  });
  t.start(std::chrono::milliseconds(1));
  loop.run();
  CHECK(log == std::vector<std::string>{"callback done", "b", "a"});
  CHECK_FALSE(a.pending());
  CHECK_FALSE(b.pending());
}

TEST_CASE("a Deferred cancelled or destroyed before it runs never runs, and may go from its own callback", "[event]") {
  Loop loop;
  std::vector<std::string> log;
  wp::event::Deferred cancelled(loop, [&] { log.push_back("cancelled"); });
  auto destroyed = std::make_unique<wp::event::Deferred>(loop, [&] { log.push_back("destroyed"); });
  std::unique_ptr<wp::event::Deferred> self;
  self = std::make_unique<wp::event::Deferred>(loop, [&] {
    log.push_back("self");
    self.reset();  // its owner goes from its own callback
  });
  int again = 0;
  std::unique_ptr<wp::event::Deferred> twice;
  twice = std::make_unique<wp::event::Deferred>(loop, [&] {
    log.push_back("twice");
    if (++again < 2) {
      twice->schedule();  // from its own callback: runs again in the same drain
    }
  });
  // One that cancels another scheduled after it in the same drain.
  wp::event::Deferred later(loop, [&] { log.push_back("later"); });
  wp::event::Deferred canceller(loop, [&] {
    log.push_back("canceller");
    later.cancel();
  });
  wp::event::Timer t(loop, [&] {
    cancelled.schedule();
    destroyed->schedule();
    self->schedule();
    twice->schedule();
    canceller.schedule();
    later.schedule();
    cancelled.cancel();
    destroyed.reset();
  });
  t.start(std::chrono::milliseconds(1));
  loop.run();
  CHECK(log == std::vector<std::string>{"self", "twice", "canceller", "twice"});
  CHECK(self == nullptr);
  CHECK_FALSE(later.pending());
}
