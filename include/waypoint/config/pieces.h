#pragma once
// Containers of immutable pieces shared between snapshots. A Snapshot holds its Pods, Services,
// chains, route tables, clusters and policy sets through shared_ptr<const T>, so that the next
// snapshot of an incremental compile (load_snapshot_from_objects with an ObjectCache) takes every
// piece no change touched as it is: one pointer copy each, and the same address, so the pointers
// between pieces (an Endpoint's Pod, a route's cluster) stay valid. Both read as containers of
// `const T`: `list[i]`, `for (const T& x : list)`, `map.at(key)`, `map.find_piece(key)`.
#include <cstddef>
#include <iterator>
#include <memory>
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

// A map (std::map or std::unordered_map of shared_ptr<const V>) read as a map of `const V`.
template <typename Map>
class PieceMap {
 public:
  using key_type = typename Map::key_type;
  using Ptr = typename Map::mapped_type;
  using value_type = typename Ptr::element_type;  // const V

  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  size_t count(const key_type& k) const { return map_.count(k); }
  value_type& at(const key_type& k) const { return *map_.at(k); }
  // The piece, or nullptr.
  value_type* find_piece(const key_type& k) const {
    auto it = map_.find(k);
    return it == map_.end() ? nullptr : it->second.get();
  }
  // Iterates (key, shared_ptr<const V>) pairs.
  auto begin() const { return map_.begin(); }
  auto end() const { return map_.end(); }

  const Map& pieces() const { return map_; }
  Map& pieces() { return map_; }

 private:
  Map map_;
};

}  // namespace wp::config
