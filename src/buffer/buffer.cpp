#include "waypoint/buffer/buffer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace wp::buffer {
namespace {

// Per-thread free lists of fixed-size blocks. Bounded so an idle worker gives memory back.
struct Pool {
  static constexpr size_t kMaxFree = 256;
  std::vector<uint8_t*> small;
  std::vector<uint8_t*> large;
  size_t in_use = 0;
  ~Pool() {
    for (auto* p : small) {
      std::free(p);
    }
    for (auto* p : large) {
      std::free(p);
    }
  }
  uint8_t* get(size_t cap) {
    auto& list = cap == Slice::kSmall ? small : large;
    in_use += cap;
    if (!list.empty()) {
      uint8_t* p = list.back();
      list.pop_back();
      return p;
    }
    auto* p = static_cast<uint8_t*>(std::malloc(cap));
    if (p == nullptr) {
      throw std::bad_alloc();
    }
    return p;
  }
  void put(uint8_t* p, size_t cap) {
    in_use -= cap;
    auto& list = cap == Slice::kSmall ? small : large;
    if (list.size() < kMaxFree) {
      list.push_back(p);
    } else {
      std::free(p);
    }
  }
};

Pool& pool() {
  thread_local Pool p;
  return p;
}

}  // namespace

size_t thread_slice_bytes_in_use() {
  return pool().in_use;
}

Slice::Slice(size_t min_capacity) {
  capacity_ = static_cast<uint32_t>(min_capacity <= kSmall ? kSmall : kLarge);
  base_ = pool().get(capacity_);
}

Slice::~Slice() {
  release();
}

void Slice::release() {
  if (base_ != nullptr) {
    pool().put(base_, capacity_);
    base_ = nullptr;
  }
}

Slice::Slice(Slice&& o) noexcept : base_(o.base_), capacity_(o.capacity_), start_(o.start_), end_(o.end_) {
  o.base_ = nullptr;
  o.capacity_ = o.start_ = o.end_ = 0;
}

Slice& Slice::operator=(Slice&& o) noexcept {
  if (this != &o) {
    release();
    base_ = o.base_;
    capacity_ = o.capacity_;
    start_ = o.start_;
    end_ = o.end_;
    o.base_ = nullptr;
    o.capacity_ = o.start_ = o.end_ = 0;
  }
  return *this;
}

size_t Slice::append(const void* p, size_t n) {
  size_t k = std::min(n, tailroom());
  std::memcpy(base_ + end_, p, k);
  end_ += static_cast<uint32_t>(k);
  return k;
}

void Buffer::append(const void* p, size_t n) {
  auto* src = static_cast<const uint8_t*>(p);
  length_ += n;
  while (n > 0) {
    if (slices_.size() == head_ || slices_.back().tailroom() == 0) {
      if (slices_.capacity() == 0) {
        slices_.reserve(4);  // one allocation for the usual one to four slices
      }
      slices_.emplace_back(n);
    }
    size_t k = slices_.back().append(src, n);
    src += k;
    n -= k;
  }
}

void Buffer::move_from(Buffer& other) {
  if (other.slices_.size() == other.head_) {
    return;
  }
  if (slices_.size() == head_) {
    slices_.swap(other.slices_);
    std::swap(head_, other.head_);
  } else {
    for (size_t i = other.head_; i < other.slices_.size(); ++i) {
      slices_.push_back(std::move(other.slices_[i]));
    }
  }
  other.slices_.clear();
  other.head_ = 0;
  length_ += other.length_;
  other.length_ = 0;
}

void Buffer::append_copy(const Buffer& other) {
  other.for_each([this](const uint8_t* p, size_t n) { append(p, n); });
}

void Buffer::move(Buffer& other, size_t n) {
  if (n >= other.length_) {
    if (other.length_ <= kCoalesce && head_ < slices_.size() && slices_.back().tailroom() >= other.length_) {
      append_copy(other);
      other.clear();
      return;
    }
    move_from(other);
    return;
  }
  while (n > 0) {
    Slice& s = other.slices_[other.head_];
    const size_t k = s.size();
    if (k == 0) {
      ++other.head_;
      continue;
    }
    const bool small = k <= kCoalesce && head_ < slices_.size() && slices_.back().tailroom() >= k;
    if (k > n || small) {
      const size_t take = std::min(k, n);
      append(s.data(), take);
      other.drain(take);  // keeps other's head_ and length_ right (and frees an emptied slice)
      n -= take;
      continue;
    }
    if (slices_.capacity() == 0) {
      slices_.reserve(4);
    }
    slices_.push_back(std::move(s));
    ++other.head_;
    other.length_ -= k;
    length_ += k;
    n -= k;
  }
  other.drain(0);  // its usual tidying: no empty slice in front, the vector's head compacted
}

size_t Buffer::copy_out(void* dst, size_t n) const {
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  for (size_t i = head_; i < slices_.size() && done < n; ++i) {
    const Slice& s = slices_[i];
    size_t k = std::min(n - done, s.size());
    std::memcpy(out + done, s.data(), k);
    done += k;
  }
  return done;
}

void Buffer::drain(size_t n) {
  n = std::min(n, length_);
  length_ -= n;
  while (n > 0) {
    Slice& s = slices_[head_];
    if (s.size() <= n) {
      n -= s.size();
      s = Slice();  // its block goes back to the pool now
      ++head_;
    } else {
      s.drain(n);
      n = 0;
    }
  }
  // Empty slices (possible after a drain that ended exactly on a boundary) never stay in front.
  while (head_ < slices_.size() && slices_[head_].size() == 0 && slices_.size() - head_ > 1) {
    slices_[head_] = Slice();
    ++head_;
  }
  if (length_ == 0) {
    slices_.clear();
    head_ = 0;
  } else if (head_ >= 16 && head_ * 2 >= slices_.size()) {
    slices_.erase(slices_.begin(), slices_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void Buffer::clear() {
  slices_.clear();
  head_ = 0;
  length_ = 0;
}

std::span<const uint8_t> Buffer::front() const {
  for (size_t i = head_; i < slices_.size(); ++i) {
    if (slices_[i].size() > 0) {
      return {slices_[i].data(), slices_[i].size()};
    }
  }
  return {};
}

}  // namespace wp::buffer
