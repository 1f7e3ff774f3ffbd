#pragma once
// A chain of slices. Bytes enter a Buffer once (append copies them into pooled slices) and then
// move between buffers by handing whole slices on, never byte by byte. Slices come from a
// per-thread free list so steady-state traffic does not touch malloc.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace wp::buffer {

class Slice {
 public:
  static constexpr size_t kSmall = 4096;
  static constexpr size_t kLarge = 16384;

  Slice() = default;
  explicit Slice(size_t min_capacity);  // takes a pooled block of kSmall or kLarge bytes
  ~Slice();
  Slice(Slice&& o) noexcept;
  Slice& operator=(Slice&& o) noexcept;
  Slice(const Slice&) = delete;
  Slice& operator=(const Slice&) = delete;

  const uint8_t* data() const { return base_ + start_; }
  size_t size() const { return end_ - start_; }
  size_t tailroom() const { return capacity_ - end_; }
  size_t append(const void* p, size_t n);  // returns bytes copied (bounded by tailroom)
  void drain(size_t n) { start_ += static_cast<uint32_t>(n); }

 private:
  void release();
  uint8_t* base_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t start_ = 0;
  uint32_t end_ = 0;
};

class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& o) noexcept : slices_(std::move(o.slices_)), head_(o.head_), length_(o.length_) {
    o.slices_.clear();
    o.head_ = o.length_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      slices_ = std::move(o.slices_);
      head_ = o.head_;
      length_ = o.length_;
      o.slices_.clear();
      o.head_ = o.length_ = 0;
    }
    return *this;
  }

  size_t length() const { return length_; }
  bool empty() const { return length_ == 0; }

  void append(const void* p, size_t n);   // copies
  void append_copy(const Buffer& other);  // copies every byte of other (other unchanged)
  void move_from(Buffer& other);          // takes every slice of other; other becomes empty
  // Takes the first n bytes of other (all of it when n is larger): whole slices change hands,
  // a slice only partly taken is copied, and so is a small slice that fits in our last slice's
  // room (kCoalesce bytes or fewer: no 16 KiB block stays pinned by a few bytes).
  void move(Buffer& other, size_t n);
  static constexpr size_t kCoalesce = 512;
  size_t copy_out(void* dst, size_t n) const;  // copies up to n bytes from the front
  void drain(size_t n);                        // drops n bytes from the front
  void clear();

  // The first contiguous run of bytes (empty span when the buffer is empty).
  std::span<const uint8_t> front() const;
  size_t slice_count() const { return slices_.size() - head_; }
  // Calls f(const uint8_t* data, size_t len) for each slice, front to back.
  template <class F>
  void for_each(F&& f) const {
    for (size_t i = head_; i < slices_.size(); ++i) {
      f(slices_[i].data(), slices_[i].size());
    }
  }

 private:
  // Live slices are slices_[head_..]: a vector with a moving head instead of a std::deque, which
  // allocates even when empty (two mallocs per Buffer, many per request; bench/ profiles).
  std::vector<Slice> slices_;
  size_t head_ = 0;
  size_t length_ = 0;
};

// Bytes currently held by pooled slices on this thread (for stats and memory tests).
size_t thread_slice_bytes_in_use();

}  // namespace wp::buffer
