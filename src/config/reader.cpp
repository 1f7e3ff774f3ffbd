#include "config/reader.h"

#include <algorithm>

namespace wp::config {

namespace {

std::string_view type_name(const Node& node) {
  switch (node.Type()) {
    case NodeType::Map:
      return "a map";
    case NodeType::Sequence:
      return "a list";
    case NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing";
  }
}

std::optional<int64_t> parse_integer(std::string_view text) {
  bool negative = !text.empty() && text.front() == '-';
  std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty() || digits.size() > 18) {
    return std::nullopt;
  }
  int64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  return negative ? -value : value;
}

}  // namespace

Mark mark_of(const Node& node) {
  return node.mark();
}

Node child(const Node& map, std::string_view key) {
  if (!map.IsMap()) {
    return Node();
  }
  for (const auto& entry : map) {
    if (entry.first.IsScalar() && entry.first.view() == key) {
      return entry.second;
    }
  }
  return Node();
}

std::vector<std::string> Diagnostics::lines(const std::vector<Entry>& entries) const {
  std::vector<const Entry*> sorted;
  for (const auto& e : entries) {
    sorted.push_back(&e);
  }
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->at.line, a->at.column) < std::tie(b->at.line, b->at.column);
  });
  std::vector<std::string> out;
  for (const Entry* e : sorted) {
    out.push_back(file_ + ":" + std::to_string(e->at.line) + ":" + std::to_string(e->at.column) + ": " + e->message);
  }
  return out;
}

std::string Diagnostics::error_text() const {
  std::string text;
  for (const auto& line : lines(errors_)) {
    text += text.empty() ? line : "\n" + line;
  }
  return text;
}

std::vector<std::string> Diagnostics::warning_lines() const {
  return lines(warnings_);
}

void Reader::error(Mark at, std::string_view path, std::string_view problem) {
  diag_.error(at, subject_ + ": " + std::string(path) + ": " + std::string(problem));
}

void Reader::warn(Mark at, std::string_view path, std::string_view problem) {
  diag_.warning(at, subject_ + ": " + std::string(path) + ": " + std::string(problem));
}

std::optional<std::string> Reader::string(const Node& node, std::string_view path) {
  if (!node.IsScalar()) {
    error(node, path, "expected a string, got " + std::string(type_name(node)));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<std::string> Reader::nonempty_string(const Node& node, std::string_view path) {
  auto value = string(node, path);
  if (value && value->empty()) {
    error(node, path, "must not be empty");
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> Reader::integer(const Node& node, std::string_view path, int64_t min, int64_t max,
                                       std::string_view noun) {
  if (!node.IsScalar()) {
    error(node, path, "expected a number, got " + std::string(type_name(node)));
    return std::nullopt;
  }
  auto value = parse_integer(node.Scalar());
  std::string range = " (" + std::to_string(min) + ".." + std::to_string(max) + ")";
  if (!value) {
    std::string message = "\"";
    message += node.Scalar();
    message += "\" is not ";
    message += noun;
    message += range;
    error(node, path, message);
    return std::nullopt;
  }
  if (*value < min || *value > max) {
    error(node, path, node.Scalar() + " is not " + std::string(noun) + range);
    return std::nullopt;
  }
  return value;
}

std::optional<uint16_t> Reader::port(const Node& node, std::string_view path) {
  auto value = integer(node, path, 1, 65535, "a port");
  return value ? std::optional<uint16_t>(static_cast<uint16_t>(*value)) : std::nullopt;
}

std::optional<bool> Reader::boolean(const Node& node, std::string_view path) {
  if (node.IsScalar() && (node.Scalar() == "true" || node.Scalar() == "false")) {
    return node.Scalar() == "true";
  }
  error(node, path, "expected true or false");
  return std::nullopt;
}

std::optional<net::IpAddr> Reader::ip(const Node& node, std::string_view path) {
  auto text = string(node, path);
  if (!text) {
    return std::nullopt;
  }
  auto ip = net::IpAddr::parse(*text);
  if (!ip) {
    error(node, path, "\"" + *text + "\" is not an IP address");
  }
  return ip;
}

std::optional<Millis> Reader::duration(const Node& node, std::string_view path) {
  auto text = string(node, path);
  if (!text) {
    return std::nullopt;
  }
  auto value = parse_duration(*text);
  if (!value) {
    error(node, path, "bad duration \"" + *text + "\" (use e.g. 10s, 250ms)");
  }
  return value;
}

std::map<std::string, std::string> Reader::string_map(const Node& node, std::string_view path) {
  std::map<std::string, std::string> out;
  if (!present(node) || !expect_map(node, path)) {
    return out;
  }
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) {
      error(entry.first, path, "keys must be strings");
      continue;
    }
    std::string key_path = std::string(path) + "." + entry.first.Scalar();
    if (auto value = string(entry.second, key_path)) {
      out.emplace(entry.first.Scalar(), *value);
    }
  }
  return out;
}

bool Reader::expect_map(const Node& node, std::string_view path) {
  if (node.IsMap()) {
    return true;
  }
  error(node, path, "expected a map, got " + std::string(type_name(node)));
  return false;
}

bool Reader::expect_sequence(const Node& node, std::string_view path) {
  if (node.IsSequence()) {
    return true;
  }
  error(node, path, "expected a list, got " + std::string(type_name(node)));
  return false;
}

std::optional<std::string> Reader::required_string(const Node& parent, std::string_view key, std::string_view path) {
  Node node = child(parent, key);
  if (!present(node)) {
    error(parent, path, "required");
    return std::nullopt;
  }
  return nonempty_string(node, path);
}

void Reader::strict_map(const Node& map, const std::string& path, const std::vector<Field>& fields) {
  if (!expect_map(map, path)) {
    return;
  }
  // Duplicate keys never get here: the loader's prescan refuses them with FILE:LINE:COL.
  for (const auto& entry : map) {
    const Node& key = entry.first;
    std::string key_text = key.IsScalar() ? key.Scalar() : "?";
    std::string field_path = path + "." + key_text;
    auto field =
        std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return key.IsScalar() && f.key == key_text; });
    if (field == fields.end()) {
      std::string known;
      for (const auto& f : fields) {
        known += (known.empty() ? "" : ", ") + std::string(f.key);
      }
      error(key, field_path, "unknown field (expected one of: " + known + ")");
      continue;
    }
    if (present(entry.second)) {
      field->handle(entry.second, field_path);
    }
  }
}

}  // namespace wp::config
