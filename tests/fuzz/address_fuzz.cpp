// Fuzzes the parsers that see CONNECT header values: :authority and forwarded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "waypoint/hbone/server.h"
#include "waypoint/net/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto a = wp::net::SockAddr::parse(text)) {
    // Whatever parses must print back to something that parses to the same address.
    auto again = wp::net::SockAddr::parse(a->to_string());
    if (!again || !(*again == *a)) {
      __builtin_trap();
    }
  }
  (void)wp::hbone::parse_forwarded_for(text);
  (void)wp::net::IpAddr::parse(text);
  return 0;
}
