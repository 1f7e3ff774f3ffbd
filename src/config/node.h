#pragma once
// Private to config/: the parsed form of one configuration document, built in a single pass from
// yaml-cpp's parser events (a file) or from nlohmann's SAX events (an object of the Kubernetes API),
// so that both modes decode through the same resource parsers without yaml-cpp's node tree or a
// second scan of the text.
//
// A Document is a flat array of slots (24 bytes each) plus one buffer of scalar bytes; a Node is a
// (document, slot) handle that is cheap to copy and valid while its Document lives. Nodes are
// immutable. The accessors mirror yaml-cpp's (IsMap, Scalar, size, iteration over pairs or items)
// so that the parsers read as they did.
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waypoint/config/snapshot.h"

namespace wp::config {

enum class NodeType : uint8_t { Undefined, Null, Scalar, Sequence, Map };

class Document;

class Node {
 public:
  Node() = default;  // undefined (an absent key)

  NodeType Type() const;
  bool IsDefined() const { return doc_ != nullptr; }
  bool IsNull() const { return Type() == NodeType::Null; }
  bool IsScalar() const { return Type() == NodeType::Scalar; }
  bool IsSequence() const { return Type() == NodeType::Sequence; }
  bool IsMap() const { return Type() == NodeType::Map; }

  // The text of a scalar; empty for anything else. view() is valid while the document lives.
  std::string_view view() const;
  std::string Scalar() const { return std::string(view()); }
  // Items of a sequence, pairs of a map; 0 for anything else.
  size_t size() const;
  // The i-th item of a sequence; undefined when out of range or not a sequence.
  Node operator[](size_t i) const;
  // 1-based position; 1:1 for an undefined node.
  config::Mark mark() const;

  // Iteration: over a map, each element has `first` (key) and `second` (value); over a sequence
  // each element is the item itself (and also its `second`).
  struct Item;
  class iterator;
  iterator begin() const;
  iterator end() const;

 private:
  friend class Document;
  Node(const Document* doc, uint32_t slot) : doc_(doc), slot_(slot) {}

  const Document* doc_ = nullptr;
  uint32_t slot_ = 0;
};

struct Node::Item : Node {
  Node first;
  Node second;
};

class Node::iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = Item;
  using difference_type = std::ptrdiff_t;
  using pointer = const Item*;
  using reference = const Item&;
  iterator() = default;
  const Item& operator*() const { return item_; }
  const Item* operator->() const { return &item_; }
  iterator& operator++() {
    ++index_;
    load();
    return *this;
  }
  iterator operator++(int) {
    iterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const iterator& o) const { return index_ == o.index_ && parent_.doc_ == o.parent_.doc_; }
  bool operator!=(const iterator& o) const { return !(*this == o); }

 private:
  friend class Node;
  iterator(Node parent, size_t index, size_t count) : parent_(parent), index_(index), count_(count) { load(); }
  void load();

  Node parent_;
  size_t index_ = 0;
  size_t count_ = 0;
  Item item_;
};

class Document {
 public:
  Node root() const { return slots_.empty() ? Node() : Node(this, root_); }

 private:
  friend class Node;
  friend class DocumentBuilder;
  struct Slot {
    NodeType type = NodeType::Null;
    uint32_t line = 0;    // 1-based
    uint32_t column = 0;  // 1-based
    uint32_t begin = 0;   // Scalar: offset into text_; collections: offset into children_
    uint32_t count = 0;   // Scalar: bytes; Sequence: items; Map: pairs (2 × count children)
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> children_;  // a collection's children, contiguous (maps: key, value, ...)
  std::string text_;
  uint32_t root_ = 0;
};

using DocumentPtr = std::unique_ptr<const Document>;

// Builds documents from events. A duplicate mapping key is recorded (the earliest of a document
// wins), never silently resolved: YAML 1.2 says keys are unique, and yaml-cpp keeps the last.
// Nesting is held on an explicit stack: depth costs memory, never recursion.
class DocumentBuilder {
 public:
  struct Duplicate {
    config::Mark at;
    std::string message;
  };

  void start_document();
  void null(config::Mark at, uint32_t anchor = 0);
  void scalar(config::Mark at, std::string_view value, uint32_t anchor = 0);
  void alias(uint32_t anchor);  // an unknown anchor becomes a null
  void start_sequence(config::Mark at, uint32_t anchor = 0);
  void start_map(config::Mark at, uint32_t anchor = 0);
  void end_collection();
  // The finished document (nullptr when none was started); `duplicate` is set when one was found.
  DocumentPtr finish_document(std::optional<Duplicate>& duplicate);
  size_t depth() const { return open_.size(); }

 private:
  void add(uint32_t slot);
  uint32_t new_slot(NodeType type, config::Mark at);
  void check_duplicates(uint32_t map_slot);

  struct Open {
    uint32_t slot;
    std::vector<uint32_t> children;
  };
  std::unique_ptr<Document> doc_;
  std::vector<Open> open_;
  std::vector<std::pair<uint32_t, uint32_t>> anchors_;  // anchor id -> slot
  std::optional<Duplicate> duplicate_;
  bool has_root_ = false;
};

// Every document of a YAML text, one pass of yaml-cpp's parser (no node tree). On malformed YAML
// (or a duplicate key) returns the error and where: "invalid YAML: ...".
struct YamlParse {
  std::vector<DocumentPtr> documents;
  std::optional<std::pair<config::Mark, std::string>> error;
};
YamlParse parse_yaml(const std::string& text);
// The same, handing each document to `each` as soon as it is complete (and keeping none); returns
// the error, if any (the documents before it have been handed over).
std::optional<std::pair<config::Mark, std::string>> parse_yaml(const std::string& text,
                                                               const std::function<void(DocumentPtr)>& each);

// One JSON value (an object of the API server) as a document whose every node is at `line`;
// nullopt and `error` set when it is not JSON or nests deeper than `max_depth`.
DocumentPtr parse_json_document(std::string_view json, uint32_t line, std::string& error, size_t max_depth = 128);

}  // namespace wp::config
