#pragma once
// The reactor of one thread: a libuv loop plus the house rules around it — deferred deletion,
// end-of-iteration tasks (write coalescing), cross-thread posts, and timers whose handles are freed
// only in their close callbacks.
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace wp::event {

// Anything destroyed through Loop::defer_delete(): never on its own stack.
class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};

class Deferred;
class ManualClock;
class Timer;

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* uv() { return &loop_; }
  void run();   // until stop() or nothing is left
  void stop();  // loop thread only
  // Loop thread only. true: run() returns only on stop(), even when no handle is left (a worker
  // whose listener was closed by POST /drain_listeners still serves and waits for a signal).
  void keep_alive(bool on);
  // Loop thread only: runs every end-of-iteration task and deferred deletion now, until none is
  // left. Teardown after run() returned calls it while the objects those tasks touch still exist.
  void drain_deferred();

  // Thread-safe: runs fn on the loop thread soon.
  void post(std::function<void()> fn);

  // Loop thread only: destroys obj after the current callbacks, before the loop blocks again.
  void defer_delete(std::unique_ptr<DeferredDeletable> obj);
  // Loop thread only: the loop owns obj until obj hands itself back with release() (it is then
  // deferred-deleted) or the loop is destroyed. For objects that outlive their creator by design,
  // such as a closed socket still flushing its last bytes, so that no such object is ever
  // unreachable at shutdown.
  void adopt(std::unique_ptr<DeferredDeletable> obj);
  void release(DeferredDeletable* obj);
  size_t adopted() const { return adopted_.size(); }
  void close_adopted();  // destroys every adopted object now (teardown, on the loop's thread)

  // Cached per iteration (libuv's loop time, CLOCK_MONOTONIC like steady_clock); a ManualClock's
  // time while one is attached.
  std::chrono::steady_clock::time_point now() const;
  uint64_t now_ms() const;
  ManualClock* manual_clock() const { return manual_; }

 private:
  friend class Deferred;
  friend class ManualClock;
  ManualClock* manual_ = nullptr;
  static void on_check(uv_check_t* h);
  static void on_async(uv_async_t* h);
  void update_idle();
  void run_scheduled();

  uv_loop_t loop_{};
  uv_check_t check_{};
  uv_idle_t idle_{};  // keeps the loop from blocking while deferred work is pending
  uv_async_t async_{};
  bool idle_active_ = false;
  // The Deferreds scheduled, in order (an intrusive list: each links itself in and out), and the
  // one whose callback is running (null once it is destroyed from it).
  Deferred* scheduled_head_ = nullptr;
  Deferred* scheduled_tail_ = nullptr;
  Deferred* running_ = nullptr;
  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
  std::unordered_map<DeferredDeletable*, std::unique_ptr<DeferredDeletable>> adopted_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
};

// Work for its owner, run once after the current loop iteration's I/O callbacks (with the rest of
// the end-of-iteration work, Loop::drain_deferred), and owned by that owner as a member: destroyed
// or cancelled before it runs, it never runs, so its callback may use `this` of its owner. A
// schedule() while it is pending does nothing (calls coalesce); one from its own callback runs it
// again in the same drain. It may be destroyed at any time, its own callback included.
class Deferred {
 public:
  Deferred(Loop& loop, std::function<void()> fn);
  ~Deferred();
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;

  void schedule();
  void cancel();
  bool pending() const { return pending_; }

 private:
  friend class Loop;
  void unlink();

  Loop& loop_;
  std::function<void()> fn_;
  bool pending_ = false;
  Deferred* prev_ = nullptr;
  Deferred* next_ = nullptr;
};

// The clock of a Loop in the unit tests: while it is attached, Loop::now() is its time and every
// Timer of the loop waits for advance() instead of libuv (Timers started before it was attached,
// or after it is gone, stay on libuv). Time starts at the loop's time when attached and moves only
// by advance(). One per loop, created and destroyed on the loop's thread.
class ManualClock {
 public:
  explicit ManualClock(Loop& loop);
  ~ManualClock();  // the timers still armed on it are disarmed (they never fire)
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  uint64_t now_ms() const { return now_ms_; }
  // Moves time forward by `d`: each timer due on the way fires in deadline order (ties in the
  // order they were started), with the time set to its deadline, and the loop's end-of-iteration
  // work (Loop::drain_deferred) runs after each, as after an iteration of the real loop. A timer
  // started by a callback for a deadline within `d` fires in the same advance(); drain_deferred
  // also runs once at the end.
  void advance(std::chrono::milliseconds d);
  // Advances to the next armed timer's deadline and fires it (and any due with it); false when
  // none is armed.
  bool fire_next();
  size_t armed() const { return armed_.size(); }
  // Milliseconds until the next armed timer fires; nullopt when none is armed.
  std::optional<std::chrono::milliseconds> next_in() const;

 private:
  friend class Timer;
  using Entry = std::tuple<uint64_t, uint64_t, Timer*>;  // deadline, start order, timer
  void arm(Timer& t, uint64_t after, uint64_t repeat);
  void disarm(Timer& t);
  bool fire_one(uint64_t until);

  Loop& loop_;
  uint64_t now_ms_;
  uint64_t seq_ = 0;
  std::set<Entry> armed_;
};

// A one-shot or repeating timer. The uv handle lives on the heap and is freed in its close
// callback, so a Timer may be destroyed at any time, including from its own callback. On a loop
// with a ManualClock attached it waits for ManualClock::advance() instead.
class Timer {
 public:
  Timer(Loop& loop, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(std::chrono::milliseconds after, std::chrono::milliseconds repeat = std::chrono::milliseconds(0));
  void stop();
  bool armed() const;

 private:
  friend class ManualClock;
  static void on_timer(uv_timer_t* h);
  Loop* loop_;
  uv_timer_t* handle_ = nullptr;  // created by the first start(): most request timers never run
  std::function<void()> cb_;
  // Armed on a ManualClock: the clock it is armed on, and its entry there.
  ManualClock* manual_ = nullptr;
  uint64_t manual_deadline_ = 0;
  uint64_t manual_seq_ = 0;
  uint64_t manual_repeat_ = 0;
};

// Closes any libuv handle and frees it (allocated with new as T) in the close callback.
template <typename T>
void close_and_delete(T* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
}

}  // namespace wp::event
