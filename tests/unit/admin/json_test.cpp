#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <string>

#include "waypoint/common/json.h"

namespace wp::json {
namespace {

TEST_CASE("json: strings are escaped as RFC 8259 asks", "[admin][json]") {
  CHECK(quote("plain") == "\"plain\"");
  CHECK(quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote("\n\r\t") == "\"\\n\\r\\t\"");
  CHECK(quote(std::string("\x00\x01\x1f", 3)) == "\"\\u0000\\u0001\\u001f\"");
  CHECK(quote("\x7f/é") == "\"\x7f/é\"");  // DEL, '/' and UTF-8 need no escape
  std::string out = "x";
  append_string(out, "y");
  CHECK(out == "x\"y\"");
}

TEST_CASE("json: commas and nesting are the writer's business", "[admin][json]") {
  Writer w;
  w.begin_object()
      .field("a", 1)
      .field("b", "two")
      .key("c")
      .begin_array()
      .number(uint64_t{3})
      .boolean(false)
      .null()
      .begin_object()
      .end_object()
      .begin_array()
      .end_array()
      .end_array()
      .field("d", true)
      .key("e")
      .begin_object()
      .field("f", -5)
      .end_object()
      .end_object();
  CHECK(w.str() == R"({"a":1,"b":"two","c":[3,false,null,{},[]],"d":true,"e":{"f":-5}})");
}

TEST_CASE("json: numbers keep their range, non-finite doubles become null", "[admin][json]") {
  Writer w;
  w.begin_array()
      .number(std::numeric_limits<uint64_t>::max())
      .number(std::numeric_limits<int64_t>::min())
      .number(uint16_t{9080})
      .number(90.0)
      .number(12.5)
      .number(std::numeric_limits<double>::infinity())
      .number(std::numeric_limits<double>::quiet_NaN())
      .end_array();
  CHECK(w.str() == "[18446744073709551615,-9223372036854775808,9080,90,12.5,null,null]");
}

TEST_CASE("json: pretty output puts one element per line", "[admin][json]") {
  Writer w(2);
  w.begin_object().field("a", 1).key("b").begin_array().string("x").end_array().key("c").begin_array().end_array();
  w.end_object();
  CHECK(w.str() == "{\n  \"a\": 1,\n  \"b\": [\n    \"x\"\n  ],\n  \"c\": []\n}");
}

TEST_CASE("json: what the writer produces reads back through YAML::Load", "[admin][json]") {
  const std::string nasty = "quote\" back\\slash\nnewline\ttab\x01 ctrl: colon # hash - dash {brace}";
  for (int indent : {0, 4}) {
    Writer w(indent);
    w.begin_object()
        .field("nasty", nasty)
        .field("number_text", "9080")
        .field("n", 9080)
        .key("list")
        .begin_array()
        .string("")
        .boolean(true)
        .null()
        .end_array()
        .end_object();
    YAML::Node n = YAML::Load(w.str());
    REQUIRE(n.IsMap());
    CHECK(n["nasty"].as<std::string>() == nasty);
    CHECK(n["number_text"].Tag() == "!");  // quoted: stays a string
    CHECK(n["n"].as<int>() == 9080);
    REQUIRE(n["list"].size() == 3);
    CHECK(n["list"][0].as<std::string>() == "");
    CHECK(n["list"][1].as<bool>());
    CHECK(n["list"][2].IsNull());
  }
}

}  // namespace
}  // namespace wp::json
