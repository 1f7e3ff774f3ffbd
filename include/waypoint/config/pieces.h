#pragma once
// Containers of immutable pieces shared between snapshots. A Snapshot holds its Pods, Services,
// chains, route tables, clusters and policy sets through shared_ptr<const T>, so that the next
// snapshot of an incremental compile (load_snapshot_from_objects with an ObjectCache) takes every
// piece no change touched as it is: one pointer copy each, and the same address, so the pointers
// between pieces (an Endpoint's Pod, a route's cluster) stay valid. Both read as containers of
// `const T`: `list[i]`, `for (const T& x : list)`, `map.at(key)`, `map.find_piece(key)`. The maps are
// sharded and copy-on-write (ShardedMap), so copying a snapshot's maps is cheap too.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wp::config {

template <typename T>
class PieceList {
 public:
  using Ptr = std::shared_ptr<const T>;
  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;
    iterator() = default;
    explicit iterator(typename std::vector<Ptr>::const_iterator it) : it_(it) {}
    const T& operator*() const { return **it_; }
    const T* operator->() const { return it_->get(); }
    iterator& operator++() {
      ++it_;
      return *this;
    }
    iterator operator++(int) { return iterator(it_++); }
    difference_type operator-(const iterator& o) const { return it_ - o.it_; }
    iterator operator+(difference_type n) const { return iterator(it_ + n); }
    bool operator==(const iterator& o) const { return it_ == o.it_; }
    bool operator!=(const iterator& o) const { return it_ != o.it_; }

   private:
    typename std::vector<Ptr>::const_iterator it_;
  };

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const T& operator[](size_t i) const { return *items_[i]; }
  const T& at(size_t i) const { return *items_.at(i); }
  const T& front() const { return *items_.front(); }
  const T& back() const { return *items_.back(); }
  iterator begin() const { return iterator(items_.begin()); }
  iterator end() const { return iterator(items_.end()); }

  void push_back(Ptr p) { items_.push_back(std::move(p)); }
  void reserve(size_t n) { items_.reserve(n); }
  const std::vector<Ptr>& pieces() const { return items_; }
  std::vector<Ptr>& pieces() { return items_; }

 private:
  std::vector<Ptr> items_;
};

// A hash map split into copy-on-write shards (by the key's hash): a copy of the map is a copy of
// kShards pointers, and a change to a copy clones the one shard it lands in, if another copy still
// shares it. So an incremental compile's next snapshot costs what its changes touch, not the size
// of the namespace. Only the thread that builds a snapshot copies and changes these maps; the
// snapshots it publishes are read-only, so a shard used by one map only is that map's to change.
// Iteration order is unspecified (listings that show it sort).
template <typename Key, typename Value, size_t kShardBits = 6>
class ShardedMap {
 public:
  using Map = std::unordered_map<Key, Value>;
  using key_type = Key;
  using mapped_type = Value;
  using value_type = typename Map::value_type;
  static constexpr size_t kShards = size_t{1} << kShardBits;

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = typename Map::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;
    iterator() = default;
    iterator(const ShardedMap* map, size_t shard) : map_(map), shard_(shard) { settle(); }
    reference operator*() const { return *it_; }
    pointer operator->() const { return &*it_; }
    iterator& operator++() {
      if (++it_ == map_->shards_[shard_]->cend()) {
        ++shard_;
        settle();
      }
      return *this;
    }
    iterator operator++(int) {
      iterator before = *this;
      ++*this;
      return before;
    }
    bool operator==(const iterator& o) const { return shard_ == o.shard_ && (shard_ >= kShards || it_ == o.it_); }
    bool operator!=(const iterator& o) const { return !(*this == o); }

   private:
    void settle() {
      while (shard_ < kShards && (!map_->shards_[shard_] || map_->shards_[shard_]->empty())) {
        ++shard_;
      }
      if (shard_ < kShards) {
        it_ = map_->shards_[shard_]->cbegin();
      }
    }
    const ShardedMap* map_ = nullptr;
    size_t shard_ = kShards;
    typename Map::const_iterator it_{};
  };

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The value under `k`, or nullptr.
  const Value* find(const Key& k) const {
    const auto& shard = shards_[shard_of(k)];
    if (!shard) {
      return nullptr;
    }
    auto it = shard->find(k);
    return it == shard->end() ? nullptr : &it->second;
  }
  size_t count(const Key& k) const { return find(k) != nullptr ? 1 : 0; }
  const Value& at(const Key& k) const {
    if (const Value* v = find(k)) {
      return *v;
    }
    throw std::out_of_range("ShardedMap::at: no such key");
  }
  iterator begin() const { return iterator(this, 0); }
  iterator end() const { return iterator(this, kShards); }

  bool emplace(Key k, Value v) {
    Map& shard = writable(shard_of(k));
    const bool inserted = shard.emplace(std::move(k), std::move(v)).second;
    size_ += inserted ? 1 : 0;
    return inserted;
  }
  void insert_or_assign(Key k, Value v) {
    Map& shard = writable(shard_of(k));
    size_ += shard.insert_or_assign(std::move(k), std::move(v)).second ? 1 : 0;
  }
  bool erase(const Key& k) {
    const size_t i = shard_of(k);
    if (!shards_[i] || shards_[i]->count(k) == 0) {
      return false;  // nothing to clone for
    }
    writable(i).erase(k);
    --size_;
    return true;
  }

 private:
  static size_t shard_of(const Key& k) {
    // The hash's top bits (Fibonacci hashing), not the low ones the shard's own buckets use.
    return static_cast<size_t>((static_cast<uint64_t>(std::hash<Key>{}(k)) * 0x9E3779B97F4A7C15ull) >>
                               (64 - kShardBits));
  }
  Map& writable(size_t i) {
    auto& shard = shards_[i];
    if (!shard) {
      shard = std::make_shared<Map>();
    } else if (shard.use_count() != 1) {
      shard = std::make_shared<Map>(*shard);  // still another copy's: this one gets its own
    }
    return *shard;
  }

  std::array<std::shared_ptr<Map>, kShards> shards_{};
  size_t size_ = 0;
};

// A ShardedMap of shared_ptr<const V> read as a map of `const V`.
template <typename Key, typename V>
class PieceMap {
 public:
  using key_type = Key;
  using Ptr = std::shared_ptr<const V>;
  using value_type = const V;

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  size_t count(const Key& k) const { return map_.count(k); }
  const V& at(const Key& k) const { return *map_.at(k); }
  // The piece, or nullptr.
  const V* find_piece(const Key& k) const {
    const Ptr* p = map_.find(k);
    return p == nullptr ? nullptr : p->get();
  }
  // Iterates (key, shared_ptr<const V>) pairs, in no particular order.
  auto begin() const { return map_.begin(); }
  auto end() const { return map_.end(); }

  bool emplace(Key k, Ptr p) { return map_.emplace(std::move(k), std::move(p)); }
  void insert_or_assign(Key k, Ptr p) { map_.insert_or_assign(std::move(k), std::move(p)); }
  bool erase(const Key& k) { return map_.erase(k); }

 private:
  ShardedMap<Key, Ptr> map_;
};

}  // namespace wp::config
