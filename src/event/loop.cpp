#include "waypoint/event/loop.h"

#include <algorithm>
#include <cstdlib>

namespace wp::event {

Loop::Loop() {
  if (uv_loop_init(&loop_) != 0) {
    std::abort();
  }
  uv_check_init(&loop_, &check_);
  check_.data = this;
  uv_check_start(&check_, &Loop::on_check);
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  uv_idle_init(&loop_, &idle_);
  idle_.data = this;
  uv_async_init(&loop_, &async_, &Loop::on_async);
  async_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&async_));
}

Loop::~Loop() {
  close_adopted();
  drain_deferred();
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  // Let every pending close callback run, then free the loop.
  while (uv_run(&loop_, UV_RUN_NOWAIT) != 0) {
  }
  uv_loop_close(&loop_);
}

void Loop::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  drain_deferred();
}

void Loop::adopt(std::unique_ptr<DeferredDeletable> obj) {
  DeferredDeletable* key = obj.get();
  adopted_.emplace(key, std::move(obj));
}

void Loop::close_adopted() {
  auto adopted = std::move(adopted_);
  adopted_.clear();
  adopted.clear();
}

void Loop::release(DeferredDeletable* obj) {
  auto it = adopted_.find(obj);
  if (it != adopted_.end()) {
    defer_delete(std::move(it->second));
    adopted_.erase(it);
  }
}

void Loop::stop() {
  uv_stop(&loop_);
}

void Loop::keep_alive(bool on) {
  if (on) {
    uv_ref(reinterpret_cast<uv_handle_t*>(&async_));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(&async_));
  }
}

void Loop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
}

void Loop::defer_delete(std::unique_ptr<DeferredDeletable> obj) {
  to_delete_.push_back(std::move(obj));
  update_idle();
}

std::chrono::steady_clock::time_point Loop::now() const {
  return std::chrono::steady_clock::time_point(std::chrono::milliseconds(now_ms()));
}

uint64_t Loop::now_ms() const {
  return manual_ != nullptr ? manual_->now_ms() : uv_now(const_cast<uv_loop_t*>(&loop_));
}

void Loop::update_idle() {
  bool want = !to_delete_.empty() || scheduled_head_ != nullptr;
  if (want && !idle_active_) {
    uv_idle_start(&idle_, [](uv_idle_t*) {});
    idle_active_ = true;
  } else if (!want && idle_active_) {
    uv_idle_stop(&idle_);
    idle_active_ = false;
  }
}

void Loop::drain_deferred() {
  // Deferreds may schedule more and queue deletions; deletions may schedule Deferreds. Run until
  // neither is left.
  while (!to_delete_.empty() || scheduled_head_ != nullptr) {
    run_scheduled();
    std::vector<std::unique_ptr<DeferredDeletable>> dead;
    dead.swap(to_delete_);
    dead.clear();
  }
  update_idle();
}

// Each scheduled Deferred, first come first run, taken off the list before its callback runs (which
// may cancel, destroy or schedule any Deferred, itself included). The callback is moved out while
// it runs, so that destroying its Deferred from it does not destroy the function running.
void Loop::run_scheduled() {
  while (Deferred* d = scheduled_head_) {
    d->unlink();
    std::function<void()> fn = std::move(d->fn_);
    running_ = d;
    fn();
    if (running_ == d) {  // still alive: it gets its callback back
      d->fn_ = std::move(fn);
    }
    running_ = nullptr;
  }
}

Deferred::Deferred(Loop& loop, std::function<void()> fn) : loop_(loop), fn_(std::move(fn)) {}

Deferred::~Deferred() {
  cancel();
  if (loop_.running_ == this) {
    loop_.running_ = nullptr;
  }
}

void Deferred::schedule() {
  if (pending_) {
    return;
  }
  pending_ = true;
  prev_ = loop_.scheduled_tail_;
  next_ = nullptr;
  (prev_ != nullptr ? prev_->next_ : loop_.scheduled_head_) = this;
  loop_.scheduled_tail_ = this;
  loop_.update_idle();
}

void Deferred::cancel() {
  if (pending_) {
    unlink();
  }
}

void Deferred::unlink() {
  (prev_ != nullptr ? prev_->next_ : loop_.scheduled_head_) = next_;
  (next_ != nullptr ? next_->prev_ : loop_.scheduled_tail_) = prev_;
  prev_ = next_ = nullptr;
  pending_ = false;
}

void Loop::on_check(uv_check_t* h) {
  static_cast<Loop*>(h->data)->drain_deferred();
}

void Loop::on_async(uv_async_t* h) {
  auto* self = static_cast<Loop*>(h->data);
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard<std::mutex> lock(self->posted_mu_);
    fns.swap(self->posted_);
  }
  for (auto& fn : fns) {
    fn();
  }
}

Timer::Timer(Loop& loop, std::function<void()> cb) : loop_(&loop), cb_(std::move(cb)) {}

Timer::~Timer() {
  if (manual_ != nullptr) {
    manual_->disarm(*this);
  }
  if (handle_ != nullptr) {
    uv_timer_stop(handle_);
    handle_->data = nullptr;
    close_and_delete(handle_);
  }
}

void Timer::start(std::chrono::milliseconds after, std::chrono::milliseconds repeat) {
  if (ManualClock* clock = loop_->manual_clock()) {
    stop();
    clock->arm(*this, static_cast<uint64_t>(after.count()), static_cast<uint64_t>(repeat.count()));
    return;
  }
  if (manual_ != nullptr) {
    manual_->disarm(*this);
  }
  if (handle_ == nullptr) {
    handle_ = new uv_timer_t;
    uv_timer_init(loop_->uv(), handle_);
    handle_->data = this;
  }
  uv_timer_start(handle_, &Timer::on_timer, static_cast<uint64_t>(after.count()),
                 static_cast<uint64_t>(repeat.count()));
}

void Timer::stop() {
  if (manual_ != nullptr) {
    manual_->disarm(*this);
  }
  if (handle_ != nullptr) {
    uv_timer_stop(handle_);
  }
}

bool Timer::armed() const {
  return manual_ != nullptr || (handle_ != nullptr && uv_is_active(reinterpret_cast<const uv_handle_t*>(handle_)) != 0);
}

void Timer::on_timer(uv_timer_t* h) {
  auto* self = static_cast<Timer*>(h->data);
  if (self != nullptr) {
    self->cb_();
  }
}

// ---- the tests' clock -----------------------------------------------------------------------------

ManualClock::ManualClock(Loop& loop) : loop_(loop), now_ms_(uv_now(loop.uv())) {
  if (loop.manual_ != nullptr) {
    std::abort();  // one per loop
  }
  loop.manual_ = this;
}

ManualClock::~ManualClock() {
  while (!armed_.empty()) {
    disarm(*std::get<2>(*armed_.begin()));
  }
  loop_.manual_ = nullptr;
}

void ManualClock::arm(Timer& t, uint64_t after, uint64_t repeat) {
  t.manual_ = this;
  t.manual_deadline_ = now_ms_ + after;
  t.manual_seq_ = ++seq_;
  t.manual_repeat_ = repeat;
  armed_.emplace(t.manual_deadline_, t.manual_seq_, &t);
}

void ManualClock::disarm(Timer& t) {
  if (t.manual_ == this) {
    armed_.erase(Entry{t.manual_deadline_, t.manual_seq_, &t});
    t.manual_ = nullptr;
  }
}

std::optional<std::chrono::milliseconds> ManualClock::next_in() const {
  if (armed_.empty()) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::get<0>(*armed_.begin()) - now_ms_);
}

// Fires the first timer due by `until`, if any: time moves to its deadline, a repeating one is
// armed again first (its callback may stop it), and the end-of-iteration work runs after it.
bool ManualClock::fire_one(uint64_t until) {
  if (armed_.empty() || std::get<0>(*armed_.begin()) > until) {
    return false;
  }
  Timer& t = *std::get<2>(*armed_.begin());
  now_ms_ = std::max(now_ms_, t.manual_deadline_);
  const uint64_t repeat = t.manual_repeat_;
  disarm(t);
  if (repeat > 0) {
    arm(t, repeat, repeat);
  }
  t.cb_();  // may destroy t (as on libuv: nothing of t is touched after it)
  loop_.drain_deferred();
  return true;
}

void ManualClock::advance(std::chrono::milliseconds d) {
  const uint64_t until = now_ms_ + static_cast<uint64_t>(d.count());
  while (fire_one(until)) {
  }
  now_ms_ = until;
  loop_.drain_deferred();
}

bool ManualClock::fire_next() {
  if (armed_.empty()) {
    return false;
  }
  const uint64_t at = std::get<0>(*armed_.begin());
  while (fire_one(at)) {
  }
  return true;
}

}  // namespace wp::event
