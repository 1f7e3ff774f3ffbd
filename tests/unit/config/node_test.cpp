// The documents every resource parser reads (config/node.h): built in one pass from yaml-cpp's
// events or nlohmann's SAX events, with yaml-cpp's view of the data (nulls, anchors, marks) and
// the checks the old prescan made (duplicate keys, a parser that makes no progress).
#include "config/node.h"

#include <catch2/catch.hpp>

namespace wp::config {
namespace {

Node only(const YamlParse& parsed) {
  REQUIRE_FALSE(parsed.error);
  REQUIRE(parsed.documents.size() == 1);
  return parsed.documents[0]->root();
}

std::string key_of(const Node& map, size_t i) {
  size_t n = 0;
  for (const auto& kv : map) {
    if (n++ == i) {
      return kv.first.Scalar();
    }
  }
  return "";
}

TEST_CASE("a YAML document: maps, sequences, scalars, nulls and marks", "[config][node]") {
  YamlParse parsed = parse_yaml("a: 1\nb: [x, 'y', ~]\nc:\n  d: null\n  e: \"null\"\nf:\n");
  Node root = only(parsed);
  REQUIRE(root.IsMap());
  CHECK(root.size() == 4);
  CHECK(key_of(root, 0) == "a");
  CHECK(key_of(root, 3) == "f");
  Node b;
  Node c;
  for (const auto& kv : root) {
    if (kv.first.view() == "b") {
      b = kv.second;
    } else if (kv.first.view() == "c") {
      c = kv.second;
    } else if (kv.first.view() == "f") {
      CHECK(kv.second.IsNull());
    }
  }
  REQUIRE(b.IsSequence());
  CHECK(b.size() == 3);
  CHECK(b[0].Scalar() == "x");
  CHECK(b[1].Scalar() == "y");
  CHECK(b[2].IsNull());
  CHECK_FALSE(b[3].IsDefined());
  CHECK(b[1].mark().line == 2);
  CHECK(b[1].mark().column == 8);
  REQUIRE(c.IsMap());
  size_t nulls = 0;
  size_t scalars = 0;
  for (const auto& kv : c) {
    nulls += kv.second.IsNull() ? 1 : 0;
    scalars += kv.second.IsScalar() && kv.second.Scalar() == "null" ? 1 : 0;  // quoted: a string
  }
  CHECK(nulls == 1);
  CHECK(scalars == 1);
  // Sequences iterate their items.
  std::string items;
  for (const auto& item : b) {
    items += item.IsNull() ? "~" : item.Scalar();
  }
  CHECK(items == "xy~");
  // A scalar has no items, a map no index.
  CHECK(b[0].size() == 0);
  CHECK_FALSE(root[0].IsDefined());
  CHECK(Node().mark().line == 1);
}

TEST_CASE("YAML documents: several, anchors and aliases share one node", "[config][node]") {
  YamlParse parsed = parse_yaml("base: &b {x: 1}\nuse: *b\n---\n- 1\n---\n");
  REQUIRE_FALSE(parsed.error);
  REQUIRE(parsed.documents.size() == 3);
  Node root = parsed.documents[0]->root();
  Node use;
  for (const auto& kv : root) {
    if (kv.first.view() == "use") {
      use = kv.second;
    }
  }
  REQUIRE(use.IsMap());
  CHECK(use.begin()->second.Scalar() == "1");
  CHECK(parsed.documents[1]->root().IsSequence());
  CHECK(parsed.documents[2]->root().IsNull());  // an empty document
}

TEST_CASE("YAML: a duplicate key is an error at the second, naming the first", "[config][node]") {
  YamlParse parsed = parse_yaml("a:\n  x: 1\n  y: 2\n  x: 3\n");
  REQUIRE(parsed.error);
  CHECK(parsed.error->first.line == 4);
  CHECK(parsed.error->first.column == 3);
  CHECK(parsed.error->second == "invalid YAML: duplicate key \"x\" (first at line 2, column 3)");
  // The earliest duplicate of the document is the one reported, whichever map closes first.
  YamlParse nested = parse_yaml("a: 1\na: 2\nb: {c: 1, c: 2}\n");
  REQUIRE(nested.error);
  CHECK(nested.error->first.line == 2);
  // The merge key may repeat; null keys compare as "~".
  CHECK_FALSE(parse_yaml("<<: {a: 1}\n<<: {b: 2}\n").error);
  CHECK(parse_yaml("~: 1\nnull: 2\n").error);
}

TEST_CASE("YAML: malformed input is an error with a position, never a hang", "[config][node]") {
  YamlParse bad = parse_yaml("a: [1, 2\n");
  REQUIRE(bad.error);
  CHECK(bad.error->second.rfind("invalid YAML: ", 0) == 0);
  // yaml-cpp 0.7 loops on a ',' where a document should start (jbeder/yaml-cpp#1040).
  YamlParse stuck = parse_yaml("a: 1\n---\n,\n");
  REQUIRE(stuck.error);
  // Deep nesting costs memory, not stack.
  std::string deep(20000, '[');
  CHECK(parse_yaml(deep).error);
}

TEST_CASE("JSON: an object of the API server as a document on one line", "[config][node]") {
  std::string error;
  DocumentPtr doc = parse_json_document(
      R"({"kind":"Pod","spec":{"n":-3,"u":18446744073709551615,"f":1.50,"t":true,"z":null,"s":"8080","l":[1,"a"]}})", 7,
      error);
  REQUIRE(doc);
  CHECK(error.empty());
  Node root = doc->root();
  REQUIRE(root.IsMap());
  Node spec;
  for (const auto& kv : root) {
    CHECK(kv.first.mark().line == 7);
    if (kv.first.view() == "spec") {
      spec = kv.second;
    }
  }
  REQUIRE(spec.IsMap());
  std::string seen;
  for (const auto& kv : spec) {
    seen += kv.first.Scalar() + "=" +
            (kv.second.IsNull()       ? "~"
             : kv.second.IsSequence() ? "[]"
                                      : kv.second.Scalar()) +
            ";";
  }
  // Numbers keep the text the YAML path would have seen (a float as written).
  CHECK(seen == "n=-3;u=18446744073709551615;f=1.50;t=true;z=~;s=8080;l=[];");
}

TEST_CASE("JSON: malformed, duplicated or too deep is refused with a reason", "[config][node]") {
  std::string error;
  CHECK_FALSE(parse_json_document("{\"a\":", 1, error));
  CHECK_FALSE(error.empty());
  error.clear();
  CHECK_FALSE(parse_json_document(R"({"a":1,"a":2})", 1, error));
  CHECK(error.find("duplicate key \"a\"") != std::string::npos);
  error.clear();
  std::string deep = std::string(129, '[') + std::string(129, ']');
  CHECK_FALSE(parse_json_document(deep, 1, error));
  CHECK(error == "nested deeper than 128 levels");
  error.clear();
  std::string ok = std::string(128, '[') + std::string(128, ']');
  CHECK(parse_json_document(ok, 1, error));
}

}  // namespace
}  // namespace wp::config
