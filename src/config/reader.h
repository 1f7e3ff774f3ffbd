#pragma once
// Private to config/: where problems are collected (Diagnostics) and the typed, position-aware
// accessors every resource parser uses (Reader). Nothing here throws on bad input; problems become
// "FILE:LINE:COL: <subject>: <field>: <problem>" lines.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/node.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/net/address.h"

namespace wp::config {

// The 1-based position of a node; 1:1 when the node carries none (absent or synthesized).
Mark mark_of(const Node& node);

// True for a key that is present with a non-null value.
inline bool present(const Node& node) {
  return node.IsDefined() && !node.IsNull();
}

// map[key]: undefined when `map` is not a map or lacks the key.
Node child(const Node& map, std::string_view key);

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(Mark at, std::string message) { errors_.push_back({at, std::move(message)}); }
  void warning(Mark at, std::string message) { warnings_.push_back({at, std::move(message)}); }
  void ignore(std::string message) { ignored_.push_back(std::move(message)); }

  bool failed() const { return !errors_.empty(); }
  void clear() {
    errors_.clear();
    warnings_.clear();
    ignored_.clear();
  }
  size_t error_count() const { return errors_.size(); }
  // One "FILE:LINE:COL: message" line per error, in file order.
  std::string error_text() const;
  std::vector<std::string> warning_lines() const;
  const std::vector<std::string>& ignored() const { return ignored_; }

  struct Entry {
    Mark at;
    std::string message;
  };
  const std::vector<Entry>& errors() const { return errors_; }
  const std::vector<Entry>& warnings() const { return warnings_; }

 private:
  std::vector<std::string> lines(const std::vector<Entry>& entries) const;

  std::string file_;
  std::vector<Entry> errors_;
  std::vector<Entry> warnings_;
  std::vector<std::string> ignored_;
};

// Reads the fields of one resource; every report is prefixed with its subject ("Service reviews").
// Paths are the field's JSON-ish path inside the resource ("spec.ports[0].port").
class Reader {
 public:
  Reader(Diagnostics& diag, std::string subject) : diag_(diag), subject_(std::move(subject)) {}

  void error(const Node& at, std::string_view path, std::string_view problem) { error(mark_of(at), path, problem); }
  void warn(const Node& at, std::string_view path, std::string_view problem) { warn(mark_of(at), path, problem); }
  void error(Mark at, std::string_view path, std::string_view problem);
  void warn(Mark at, std::string_view path, std::string_view problem);

  // Each accessor expects a present node and reports a type or range problem at it.
  std::optional<std::string> string(const Node& node, std::string_view path);
  std::optional<std::string> nonempty_string(const Node& node, std::string_view path);
  std::optional<int64_t> integer(const Node& node, std::string_view path, int64_t min, int64_t max,
                                 std::string_view noun = "an integer");
  std::optional<uint16_t> port(const Node& node, std::string_view path);
  std::optional<bool> boolean(const Node& node, std::string_view path);  // true / false only
  std::optional<net::IpAddr> ip(const Node& node, std::string_view path);
  std::optional<Millis> duration(const Node& node, std::string_view path);
  std::map<std::string, std::string> string_map(const Node& node, std::string_view path);
  bool expect_map(const Node& node, std::string_view path);
  bool expect_sequence(const Node& node, std::string_view path);

  // A required string: reports "required" at `parent` when absent.
  std::optional<std::string> required_string(const Node& parent, std::string_view key, std::string_view path);

  // Strict maps (the bootstrap): every key must be one of `fields`; a null value counts as unset.
  using FieldHandler = std::function<void(const Node& value, const std::string& path)>;
  struct Field {
    std::string_view key;
    FieldHandler handle;
  };
  void strict_map(const Node& map, const std::string& path, const std::vector<Field>& fields);

 private:
  Diagnostics& diag_;
  std::string subject_;
};

// Calls `each(item, item_path)` for every entry of the list at map[key] (absent: nothing).
template <typename F>
void for_each_item(Reader& r, const Node& map, const char* key, const std::string& path, F each) {
  const Node list = child(map, key);
  std::string list_path = path.empty() ? key : path + "." + key;
  if (!present(list) || !r.expect_sequence(list, list_path)) {
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    each(list[i], list_path + "[" + std::to_string(i) + "]");
  }
}

}  // namespace wp::config
