#pragma once
// An ordered HTTP field list. Names are stored lowercase (HTTP field names are case-insensitive and
// HTTP/2 requires lowercase); values are stored as received, without surrounding whitespace.
// Order and duplicates are preserved, so a map can be re-serialized faithfully.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wp::http {

// Without leading and trailing optional white space (SP / HTAB, RFC 9110 §5.6.3).
std::string_view trim_ows(std::string_view v);

struct Header {
  std::string name;  // lowercase
  std::string value;
};

class HeaderMap {
 public:
  using const_iterator = std::vector<Header>::const_iterator;

  // Appends a field (name is lowercased).
  void add(std::string_view name, std::string_view value);
  // Replaces every field called `name` with one field (appended where the first one was, or at the end).
  void set(std::string_view name, std::string_view value);
  // Removes every field called `name`; returns how many were removed.
  size_t remove(std::string_view name);

  // The first value of `name`, or nullopt. The view is valid until the map is modified.
  std::optional<std::string_view> get(std::string_view name) const;
  std::vector<std::string_view> get_all(std::string_view name) const;
  size_t count(std::string_view name) const;
  bool has(std::string_view name) const { return count(name) > 0; }

  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  // Sum of name and value lengths of every field (what header limits are measured in).
  size_t byte_size() const { return bytes_; }
  void clear();

  const_iterator begin() const { return fields_.begin(); }
  const_iterator end() const { return fields_.end(); }
  const Header& operator[](size_t i) const { return fields_[i]; }

  bool operator==(const HeaderMap& o) const;

 private:
  std::vector<Header> fields_;
  size_t bytes_ = 0;
};

// ASCII case-insensitive comparison.
bool iequals(std::string_view a, std::string_view b);

// True for the fields that never cross a hop on their own (RFC 9110 §7.6.1), plus the legacy
// keep-alive / proxy-connection: connection, keep-alive, proxy-connection, transfer-encoding, te, upgrade.
bool is_hop_by_hop(std::string_view lowercase_name);

// Header names with '_' (Envoy's headers_with_underscores_action). Names that read as
// Content-Length or Transfer-Encoding once '_' is taken for '-' are refused whatever the action:
// CGI/WSGI-style backends merge them with the real ones (HTTP_CONTENT_LENGTH), a desync risk on a
// kept-alive upstream.
enum class UnderscoreAction { Allow, DropHeader, RejectRequest };
enum class UnderscoreVerdict { Ok, Dropped, Rejected, FramingLookalike };
UnderscoreVerdict check_underscores(HeaderMap& headers, UnderscoreAction action);

}  // namespace wp::http
