#include "config/node.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

namespace wp::config {

// ---- Node -----------------------------------------------------------------------------------

NodeType Node::Type() const {
  return doc_ == nullptr ? NodeType::Undefined : doc_->slots_[slot_].type;
}

std::string_view Node::view() const {
  if (!IsScalar()) {
    return {};
  }
  const auto& s = doc_->slots_[slot_];
  return std::string_view(doc_->text_).substr(s.begin, s.count);
}

size_t Node::size() const {
  NodeType t = Type();
  return t == NodeType::Sequence || t == NodeType::Map ? doc_->slots_[slot_].count : 0;
}

Node Node::operator[](size_t i) const {
  if (!IsSequence() || i >= size()) {
    return Node();
  }
  return Node(doc_, doc_->children_[doc_->slots_[slot_].begin + i]);
}

config::Mark Node::mark() const {
  if (doc_ == nullptr) {
    return config::Mark{1, 1};
  }
  const auto& s = doc_->slots_[slot_];
  return config::Mark{static_cast<int>(s.line), static_cast<int>(s.column)};
}

Node::iterator Node::begin() const {
  return iterator(*this, 0, size());
}
Node::iterator Node::end() const {
  return iterator(*this, size(), size());
}

void Node::iterator::load() {
  if (index_ >= count_) {
    item_ = Item();
    return;
  }
  const Document* doc = parent_.doc_;
  const auto& slot = doc->slots_[parent_.slot_];
  if (slot.type == NodeType::Map) {
    item_.first = Node(doc, doc->children_[slot.begin + 2 * index_]);
    item_.second = Node(doc, doc->children_[slot.begin + 2 * index_ + 1]);
  } else {
    item_.first = Node();
    item_.second = Node(doc, doc->children_[slot.begin + index_]);
  }
  static_cast<Node&>(item_) = item_.second;
}

// ---- DocumentBuilder ------------------------------------------------------------------------

void DocumentBuilder::start_document() {
  doc_ = std::make_unique<Document>();
  open_.clear();
  anchors_.clear();
  duplicate_.reset();
  has_root_ = false;
}

uint32_t DocumentBuilder::new_slot(NodeType type, config::Mark at) {
  Document::Slot s;
  s.type = type;
  s.line = static_cast<uint32_t>(std::max(at.line, 1));
  s.column = static_cast<uint32_t>(std::max(at.column, 1));
  doc_->slots_.push_back(s);
  return static_cast<uint32_t>(doc_->slots_.size() - 1);
}

void DocumentBuilder::add(uint32_t slot) {
  if (!open_.empty()) {
    open_.back().children.push_back(slot);
  } else if (!has_root_) {
    doc_->root_ = slot;
    has_root_ = true;
  }
}

void DocumentBuilder::null(config::Mark at, uint32_t anchor) {
  uint32_t slot = new_slot(NodeType::Null, at);
  if (anchor != 0) {
    anchors_.emplace_back(anchor, slot);
  }
  add(slot);
}

void DocumentBuilder::scalar(config::Mark at, std::string_view value, uint32_t anchor) {
  uint32_t slot = new_slot(NodeType::Scalar, at);
  auto& s = doc_->slots_[slot];
  s.begin = static_cast<uint32_t>(doc_->text_.size());
  s.count = static_cast<uint32_t>(value.size());
  doc_->text_.append(value);
  if (anchor != 0) {
    anchors_.emplace_back(anchor, slot);
  }
  add(slot);
}

void DocumentBuilder::alias(uint32_t anchor) {
  // The latest definition of an anchor wins (YAML allows redefinition).
  for (auto it = anchors_.rbegin(); it != anchors_.rend(); ++it) {
    if (it->first == anchor) {
      add(it->second);
      return;
    }
  }
  null(config::Mark{1, 1});
}

void DocumentBuilder::start_sequence(config::Mark at, uint32_t anchor) {
  uint32_t slot = new_slot(NodeType::Sequence, at);
  if (anchor != 0) {
    anchors_.emplace_back(anchor, slot);
  }
  add(slot);
  open_.push_back({slot, {}});
}

void DocumentBuilder::start_map(config::Mark at, uint32_t anchor) {
  uint32_t slot = new_slot(NodeType::Map, at);
  if (anchor != 0) {
    anchors_.emplace_back(anchor, slot);
  }
  add(slot);
  open_.push_back({slot, {}});
}

void DocumentBuilder::end_collection() {
  if (open_.empty()) {
    return;
  }
  Open top = std::move(open_.back());
  open_.pop_back();
  const Document::Slot opened = doc_->slots_[top.slot];
  if (opened.type == NodeType::Map && top.children.size() % 2 != 0) {
    // A key without its value (never produced by either parser): the value is null.
    top.children.push_back(
        new_slot(NodeType::Null, config::Mark{static_cast<int>(opened.line), static_cast<int>(opened.column)}));
  }
  auto& slot = doc_->slots_[top.slot];
  slot.begin = static_cast<uint32_t>(doc_->children_.size());
  slot.count = static_cast<uint32_t>(slot.type == NodeType::Map ? top.children.size() / 2 : top.children.size());
  doc_->children_.insert(doc_->children_.end(), top.children.begin(), top.children.end());
  if (slot.type == NodeType::Map) {
    check_duplicates(top.slot);
  }
}

void DocumentBuilder::check_duplicates(uint32_t map_slot) {
  const Document& d = *doc_;
  const auto& m = d.slots_[map_slot];
  if (m.count < 2) {
    return;
  }
  // Keys as compared by YAML: scalars by their text, a null key as "~"; the merge key "<<" and
  // complex keys are not compared.
  struct Key {
    std::string_view text;
    uint32_t slot;
  };
  std::vector<Key> keys;
  keys.reserve(m.count);
  for (uint32_t i = 0; i < m.count; ++i) {
    uint32_t k = d.children_[m.begin + 2 * i];
    const auto& ks = d.slots_[k];
    if (ks.type == NodeType::Scalar) {
      std::string_view text = std::string_view(d.text_).substr(ks.begin, ks.count);
      if (text != "<<") {
        keys.push_back({text, k});
      }
    } else if (ks.type == NodeType::Null) {
      keys.push_back({"~", k});
    }
  }
  // Stable by key, then in document order: each run's first is the original.
  std::stable_sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return a.text < b.text; });
  for (size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].text != keys[i - 1].text) {
      continue;
    }
    size_t first = i - 1;
    while (first > 0 && keys[first - 1].text == keys[i].text) {
      --first;
    }
    const auto& at = d.slots_[keys[i].slot];
    const auto& orig = d.slots_[keys[first].slot];
    const int line = static_cast<int>(at.line);
    const int column = static_cast<int>(at.column);
    if (duplicate_ &&
        (duplicate_->at.line < line || (duplicate_->at.line == line && duplicate_->at.column <= column))) {
      continue;  // an earlier one is already recorded
    }
    duplicate_ = Duplicate{config::Mark{static_cast<int>(at.line), static_cast<int>(at.column)},
                           "duplicate key \"" + std::string(keys[i].text) + "\" (first at line " +
                               std::to_string(orig.line) + ", column " + std::to_string(orig.column) + ")"};
  }
}

DocumentPtr DocumentBuilder::finish_document(std::optional<Duplicate>& duplicate) {
  while (!open_.empty()) {
    end_collection();
  }
  duplicate = std::move(duplicate_);
  duplicate_.reset();
  if (doc_ && !has_root_) {
    doc_->slots_.clear();
  }
  if (doc_) {
    // Documents may be kept (the API mode's object cache): no growth slack.
    doc_->slots_.shrink_to_fit();
    doc_->children_.shrink_to_fit();
    doc_->text_.shrink_to_fit();
  }
  return std::move(doc_);
}

// ---- YAML -----------------------------------------------------------------------------------

namespace {

config::Mark mark_from(const YAML::Mark& m) {
  return m.is_null() ? config::Mark{1, 1} : config::Mark{m.line + 1, m.column + 1};
}

uint32_t anchor_id(YAML::anchor_t a) {
  return static_cast<uint32_t>(a);
}

struct YamlEvents : YAML::EventHandler {
  DocumentBuilder& b;
  YAML::Mark start;
  explicit YamlEvents(DocumentBuilder& builder) : b(builder) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    start = mark;
    b.start_document();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { b.null(mark_from(mark), anchor_id(anchor)); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override { b.alias(anchor_id(anchor)); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    b.scalar(mark_from(mark), value, anchor_id(anchor));
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    b.start_sequence(mark_from(mark), anchor_id(anchor));
  }
  void OnSequenceEnd() override { b.end_collection(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    b.start_map(mark_from(mark), anchor_id(anchor));
  }
  void OnMapEnd() override { b.end_collection(); }
};

}  // namespace

std::optional<std::pair<config::Mark, std::string>> parse_yaml(const std::string& text,
                                                               const std::function<void(DocumentPtr)>& each) {
  std::istringstream in(text);
  DocumentBuilder builder;
  YamlEvents events(builder);
  try {
    YAML::Parser parser(in);
    // yaml-cpp 0.7 never returns on some malformed streams (a "," where a document should start:
    // jbeder/yaml-cpp#1040, fixed upstream after 0.8) and allocates until the process dies: a
    // document starting where the previous one did means the parser made no progress.
    for (int previous = -1; parser.HandleNextDocument(events); previous = events.start.pos) {
      std::optional<DocumentBuilder::Duplicate> duplicate;
      DocumentPtr doc = builder.finish_document(duplicate);
      if (events.start.pos == previous) {
        return std::make_pair(mark_from(events.start),
                              std::string("invalid YAML: unexpected text where a document should start"));
      }
      if (duplicate) {
        return std::make_pair(duplicate->at, "invalid YAML: " + duplicate->message);
      }
      if (doc) {
        each(std::move(doc));
      }
    }
  } catch (const YAML::Exception& e) {
    return std::make_pair(mark_from(e.mark), "invalid YAML: " + e.msg);
  }
  return std::nullopt;
}

YamlParse parse_yaml(const std::string& text) {
  YamlParse out;
  out.error = parse_yaml(text, [&](DocumentPtr doc) { out.documents.push_back(std::move(doc)); });
  if (out.error) {
    out.documents.clear();
  }
  return out;
}

// ---- JSON -----------------------------------------------------------------------------------

namespace {

struct JsonEvents : nlohmann::json_sax<nlohmann::json> {
  DocumentBuilder& b;
  config::Mark at;
  size_t max_depth;
  std::string& error;
  JsonEvents(DocumentBuilder& builder, uint32_t line, size_t depth, std::string& err)
      : b(builder), at{static_cast<int>(line), 1}, max_depth(depth), error(err) {}

  bool null() override {
    b.null(at);
    return true;
  }
  bool boolean(bool v) override {
    b.scalar(at, v ? "true" : "false");
    return true;
  }
  bool number_integer(number_integer_t v) override {
    b.scalar(at, std::to_string(v));
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override {
    b.scalar(at, std::to_string(v));
    return true;
  }
  bool number_float(number_float_t, const string_t& text) override {
    b.scalar(at, text);
    return true;
  }
  bool string(string_t& v) override {
    b.scalar(at, v);
    return true;
  }
  bool binary(binary_t&) override {
    error = "binary values are not JSON";
    return false;
  }
  bool deeper() {
    if (b.depth() >= max_depth) {
      error = "nested deeper than " + std::to_string(max_depth) + " levels";
      return false;
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (!deeper()) {
      return false;
    }
    b.start_map(at);
    return true;
  }
  bool key(string_t& v) override {
    b.scalar(at, v);
    return true;
  }
  bool end_object() override {
    b.end_collection();
    return true;
  }
  bool start_array(std::size_t) override {
    if (!deeper()) {
      return false;
    }
    b.start_sequence(at);
    return true;
  }
  bool end_array() override {
    b.end_collection();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = e.what();
    return false;
  }
};

}  // namespace

DocumentPtr parse_json_document(std::string_view json, uint32_t line, std::string& error, size_t max_depth) {
  DocumentBuilder builder;
  builder.start_document();
  JsonEvents events(builder, line, max_depth, error);
  bool ok = nlohmann::json::sax_parse(json.begin(), json.end(), &events);
  std::optional<DocumentBuilder::Duplicate> duplicate;
  DocumentPtr doc = builder.finish_document(duplicate);
  if (!ok) {
    if (error.empty()) {
      error = "not JSON";
    }
    return nullptr;
  }
  if (duplicate) {
    error = duplicate->message;
    return nullptr;
  }
  return doc;
}

}  // namespace wp::config
