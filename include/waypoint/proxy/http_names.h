#pragma once
// The proxy pipeline speaks in the message model of the http/ layer (the codecs' layer, below it):
// its names, in wp::proxy.
#include "waypoint/http/headers.h"
#include "waypoint/http/message.h"

namespace wp::proxy {

using http::check_underscores;
using http::Header;
using http::HeaderMap;
using http::iequals;
using http::is_hop_by_hop;
using http::reason_phrase;
using http::RequestHead;
using http::ResponseHead;
using http::UnderscoreAction;
using http::UnderscoreVerdict;
using http::Version;

}  // namespace wp::proxy
