#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
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

// ---- the tests' clock ---------------------------------------------------------------------------------

TEST_CASE("ManualClock: timers fire at their deadline in order, only when time is advanced", "[event][clock]") {
  wp::event::Loop loop;
  wp::event::ManualClock clock(loop);
  const uint64_t t0 = loop.now_ms();
  std::vector<std::string> fired;
  wp::event::Timer a(loop, [&] { fired.push_back("a@" + std::to_string(loop.now_ms() - t0)); });
  wp::event::Timer b(loop, [&] { fired.push_back("b@" + std::to_string(loop.now_ms() - t0)); });
  wp::event::Timer tie(loop, [&] { fired.push_back("tie@" + std::to_string(loop.now_ms() - t0)); });
  a.start(std::chrono::milliseconds(30));
  b.start(std::chrono::milliseconds(10));
  tie.start(std::chrono::milliseconds(30));  // same deadline as a, started after it
  CHECK(a.armed());
  CHECK(clock.armed() == 3);
  CHECK(clock.next_in() == std::chrono::milliseconds(10));
  uv_run(loop.uv(), UV_RUN_NOWAIT);  // libuv's own turn fires nothing: the timers wait for the clock
  CHECK(fired.empty());
  clock.advance(std::chrono::milliseconds(9));
  CHECK(fired.empty());
  CHECK(loop.now_ms() - t0 == 9);
  clock.advance(std::chrono::milliseconds(1));
  CHECK(fired == std::vector<std::string>{"b@10"});
  clock.advance(std::chrono::milliseconds(100));
  CHECK(fired == std::vector<std::string>{"b@10", "a@30", "tie@30"});
  CHECK(loop.now_ms() - t0 == 110);
  CHECK_FALSE(a.armed());
  CHECK(clock.armed() == 0);
  CHECK_FALSE(clock.fire_next());
}

TEST_CASE("ManualClock: repeats, restarts and stops from callbacks, deferred work runs after each timer",
          "[event][clock]") {
  wp::event::Loop loop;
  wp::event::ManualClock clock(loop);
  int ticks = 0;
  int deferred_runs = 0;
  wp::event::Deferred after(loop, [&] { ++deferred_runs; });
  std::optional<wp::event::Timer> tick;
  tick.emplace(loop, [&] {
    ++ticks;
    after.schedule();
    if (ticks == 3) {
      tick->stop();
    }
  });
  tick->start(std::chrono::milliseconds(5), std::chrono::milliseconds(5));
  clock.advance(std::chrono::milliseconds(12));
  CHECK(ticks == 2);
  CHECK(deferred_runs == 2);  // once after each firing, as after each loop iteration
  clock.advance(std::chrono::milliseconds(100));
  CHECK(ticks == 3);  // stopped from its third callback
  CHECK_FALSE(tick->armed());

  // A timer started by a callback for a deadline inside the same advance() fires in it.
  int chained = 0;
  wp::event::Timer second(loop, [&] { ++chained; });
  wp::event::Timer first(loop, [&] { second.start(std::chrono::milliseconds(3)); });
  first.start(std::chrono::milliseconds(2));
  clock.advance(std::chrono::milliseconds(5));
  CHECK(chained == 1);

  // A timer destroyed from its own callback, and one destroyed while armed.
  wp::event::Timer* self = nullptr;
  self = new wp::event::Timer(loop, [&] { delete self; });
  self->start(std::chrono::milliseconds(1));
  tick->start(std::chrono::milliseconds(1));
  tick.reset();
  CHECK(clock.armed() == 1);
  CHECK(clock.fire_next());
  CHECK(clock.armed() == 0);
}

TEST_CASE("ManualClock: a timer still armed when the clock goes is disarmed and never fires", "[event][clock]") {
  wp::event::Loop loop;
  int fired = 0;
  wp::event::Timer t(loop, [&] { ++fired; });
  {
    wp::event::ManualClock clock(loop);
    t.start(std::chrono::milliseconds(1));
    CHECK(t.armed());
  }
  CHECK_FALSE(t.armed());
  CHECK(loop.manual_clock() == nullptr);
  t.start(std::chrono::milliseconds(1));  // back on libuv
  CHECK(t.armed());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (fired == 0 && std::chrono::steady_clock::now() < deadline) {
    uv_run(loop.uv(), UV_RUN_ONCE);
  }
  CHECK(fired == 1);
}
