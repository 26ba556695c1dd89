// The JSON reader (strictness, positions, numbers, strings, limits) and the writer, whose output
// must match Python's json.dumps byte for byte. The expected strings below were produced by
// Python 3.11's json.dumps / repr and pasted in.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "qplug/sdk/value.hpp"

namespace qplug {
namespace {

Value parse(const std::string& text) {
  return parse_json(text, "in.json");
}

// Parses text, which must fail, and returns the error.
ConfigError json_error(const std::string& text, const JsonParseOptions& options = {}) {
  try {
    parse_json(text, "in.json", options);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ConfigError for: " << text;
  return ConfigError("no error was thrown");
}

// The error's message and position, in one string so a failure shows all three.
std::string error_at(const std::string& text, const JsonParseOptions& options = {}) {
  ConfigError e = json_error(text, options);
  return std::to_string(e.where().line) + ":" + std::to_string(e.where().column) + " " + e.detail();
}

// ---- reader: values ----------------------------------------------------------------------------

TEST(JsonReader, Literals) {
  EXPECT_TRUE(parse("null").is_null());
  EXPECT_EQ(parse("true"), Value(true));
  EXPECT_EQ(parse("false"), Value(false));
  EXPECT_EQ(parse(" \t\r\n \"s\" \n"), Value("s"));
}

TEST(JsonReader, IntegersStayIntegersAndFloatsStayFloats) {
  EXPECT_TRUE(parse("128").is_int());
  EXPECT_EQ(parse("128").as_int(), 128);
  EXPECT_TRUE(parse("6.0").is_float());
  EXPECT_TRUE(parse("1e2").is_float());
  EXPECT_EQ(parse("1E2").as_double(), 100.0);
  EXPECT_EQ(parse("1e+2").as_double(), 100.0);
  EXPECT_EQ(parse("0.5e-3").as_double(), 0.0005);
  EXPECT_EQ(parse("-12.75").as_double(), -12.75);
  EXPECT_EQ(parse("0").as_int(), 0);
}

TEST(JsonReader, NegativeZero) {
  const Value int_zero = parse("-0");  // Python's json reads this as the int 0
  EXPECT_TRUE(int_zero.is_int());
  EXPECT_EQ(int_zero.as_int(), 0);
  const Value float_zero = parse("-0.0");
  ASSERT_TRUE(float_zero.is_float());
  EXPECT_EQ(float_zero.as_double(), 0.0);
  EXPECT_TRUE(std::signbit(float_zero.as_double()));
}

TEST(JsonReader, Int64Limits) {
  EXPECT_EQ(parse("9223372036854775807").as_int(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(parse("-9223372036854775808").as_int(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(error_at("9223372036854775808"), "1:1 integer out of range");
  EXPECT_EQ(error_at("[1, -9223372036854775809]"), "1:5 integer out of range");
  EXPECT_EQ(error_at("123456789012345678901234567890"), "1:1 integer out of range");
}

TEST(JsonReader, DoubleLimits) {
  EXPECT_EQ(parse("1.7976931348623157e308").as_double(), std::numeric_limits<double>::max());
  EXPECT_EQ(parse("5e-324").as_double(), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(parse("1e-400").as_double(), 0.0);  // Python's float() underflows to zero too
  EXPECT_TRUE(std::signbit(parse("-1e-400").as_double()));
  EXPECT_EQ(parse("0.0000001e-400").as_double(), 0.0);
  EXPECT_EQ(error_at("1e400"), "1:1 number out of range (overflows a double)");
  EXPECT_EQ(error_at("[-1e400]"), "1:2 number out of range (overflows a double)");
  EXPECT_EQ(error_at("1.8e308"), "1:1 number out of range (overflows a double)");
  EXPECT_EQ(error_at("1000000000000000000000000000000.0e300"),
            "1:1 number out of range (overflows a double)");
  EXPECT_EQ(error_at("1e99999999999999999999999"), "1:1 number out of range (overflows a double)");
  EXPECT_EQ(parse("1e-99999999999999999999999").as_double(), 0.0);
}

TEST(JsonReader, NonFiniteNumbersAsPythonWritesThem) {
  EXPECT_TRUE(std::isnan(parse("NaN").as_double()));
  EXPECT_EQ(parse("Infinity").as_double(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(parse("-Infinity").as_double(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(parse("[1, NaN]").as_list()[1].location().column, 5);

  JsonParseOptions strict;
  strict.allow_non_finite = false;
  EXPECT_EQ(error_at("[1, NaN]", strict),
            "1:5 NaN is not valid JSON (non-finite numbers are not allowed)");
  EXPECT_EQ(error_at("\n -Infinity", strict),
            "2:2 -Infinity is not valid JSON (non-finite numbers are not allowed)");
  EXPECT_EQ(error_at("Infinity", strict),
            "1:1 Infinity is not valid JSON (non-finite numbers are not allowed)");
  EXPECT_EQ(error_at("nan"), "1:1 expected a value, got 'n'");
  EXPECT_EQ(error_at("-Inf"), "1:2 expected a digit after '-'");
}

TEST(JsonReader, NumberSyntaxErrors) {
  EXPECT_EQ(error_at("01"), "1:1 leading zeros are not allowed");
  EXPECT_EQ(error_at("[-01]"), "1:3 leading zeros are not allowed");
  EXPECT_EQ(error_at("00.5"), "1:1 leading zeros are not allowed");
  EXPECT_EQ(error_at("1."), "1:3 expected a digit after the decimal point");
  EXPECT_EQ(error_at("1.e5"), "1:3 expected a digit after the decimal point");
  EXPECT_EQ(error_at("1e"), "1:3 expected a digit in the exponent");
  EXPECT_EQ(error_at("1e+"), "1:4 expected a digit in the exponent");
  EXPECT_EQ(error_at("-"), "1:2 expected a digit after '-'");
  EXPECT_EQ(error_at(".5"), "1:1 expected a value, got '.'");
  EXPECT_EQ(error_at("+1"), "1:1 expected a value, got '+'");
  EXPECT_EQ(error_at("0x10"), "1:2 unexpected data after the JSON value");
  EXPECT_EQ(parse("0.0").as_double(), 0.0);
  EXPECT_EQ(parse("10").as_int(), 10);
}

TEST(JsonReader, ListsAndMapsKeepOrder) {
  const Value v = parse(R"({"z": [1, 2.5, "x", null, true], "a": {}, "m": []})");
  ASSERT_TRUE(v.is_map());
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v.as_map()[0].first, "z");
  EXPECT_EQ(v.as_map()[1].first, "a");
  EXPECT_EQ(v.as_map()[2].first, "m");
  EXPECT_EQ(v.at("z"), Value::list({1, 2.5, "x", Value(), true}));
  EXPECT_TRUE(v.at("a").is_map());
  EXPECT_EQ(v.at("a").size(), 0u);
  EXPECT_TRUE(v.at("m").is_list());
}

// ---- reader: strings ---------------------------------------------------------------------------

TEST(JsonReader, SimpleEscapes) {
  EXPECT_EQ(parse(R"("a\"b\\c\/d\be\ff\ng\rh\ti")").as_string(), "a\"b\\c/d\be\ff\ng\rh\ti");
}

TEST(JsonReader, UnicodeEscapesBecomeUtf8) {
  EXPECT_EQ(parse(R"("\u00e9")").as_string(), "\xC3\xA9");
  EXPECT_EQ(parse(R"("\u20AC")").as_string(), "\xE2\x82\xAC");
  EXPECT_EQ(parse(R"("\u0041\u007f")").as_string(), "A\x7F");
  EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");
  EXPECT_EQ(parse(R"("\uDBFF\uDFFF")").as_string(), "\xF4\x8F\xBF\xBF");
  const std::string nul = parse(R"("a\u0000b")").as_string();
  EXPECT_EQ(nul, std::string("a\0b", 3));
}

TEST(JsonReader, BadUnicodeEscapes) {
  EXPECT_EQ(error_at(R"("ab\u12G4")"), "1:4 invalid \\u escape (expected 4 hex digits)");
  EXPECT_EQ(error_at(R"("\u12")"), "1:2 invalid \\u escape (expected 4 hex digits)");
  EXPECT_EQ(error_at(R"("\u12)"), "1:2 invalid \\u escape (expected 4 hex digits)");
  EXPECT_EQ(error_at(R"(["\ud83d"])"), "1:3 unpaired surrogate");
  EXPECT_EQ(error_at(R"("x\ude00")"), "1:3 unpaired surrogate");
  EXPECT_EQ(error_at(R"("\ud83d\u0041")"), "1:2 unpaired surrogate");
  EXPECT_EQ(error_at(R"("\ud83d\ud83d")"), "1:2 unpaired surrogate");
  EXPECT_EQ(error_at(R"("\ud83d\n")"), "1:2 unpaired surrogate");
  EXPECT_EQ(error_at(R"("\ud83d\uZZZZ")"), "1:8 invalid \\u escape (expected 4 hex digits)");
}

TEST(JsonReader, OtherStringErrors) {
  EXPECT_EQ(error_at(R"("a\qb")"), "1:3 invalid escape '\\q'");
  EXPECT_EQ(error_at("\"a\\\x01\""), "1:3 invalid escape: backslash followed by byte 0x01");
  EXPECT_EQ(error_at("\"abc"), "1:1 unterminated string");
  EXPECT_EQ(error_at("[\"abc\\"), "1:6 unterminated string");
  EXPECT_EQ(error_at("\"a\tb\""), "1:3 control character in string (byte 0x09)");
  EXPECT_EQ(error_at("{\"k\": \"line\nbreak\"}"), "1:12 control character in string (byte 0x0A)");
  EXPECT_EQ(error_at(std::string("\"a\0\"", 4)), "1:3 control character in string (byte 0x00)");
}

TEST(JsonReader, RawNonAsciiBytesAreKept) {
  EXPECT_EQ(parse("\"caf\xC3\xA9 \x7F\"").as_string(), "caf\xC3\xA9 \x7F");
  EXPECT_EQ(parse("\"\xFF\xFE\"").as_string(), "\xFF\xFE");  // not UTF-8, kept as it is
}

// ---- reader: positions -------------------------------------------------------------------------

TEST(JsonReader, EveryValueKnowsItsPosition) {
  const std::string text =
      "{\n"
      "  \"bits\": 4,\n"
      "  \"layers\": [\n"
      "    {\"name\": \"q\"},\n"
      "    null\n"
      "  ]\n"
      "}\n";
  const Value v = parse_json(text, "model/config.json");
  EXPECT_EQ(*v.location().file, "model/config.json");
  EXPECT_EQ(v.location().line, 1);
  EXPECT_EQ(v.location().column, 1);
  const Value& bits = v.at("bits");
  EXPECT_EQ(bits.location().str(), "model/config.json:2:11");
  const Value& layers = v.at("layers");
  EXPECT_EQ(layers.location().line, 3);
  EXPECT_EQ(layers.location().column, 13);
  EXPECT_EQ(layers.as_list()[0].location().line, 4);
  EXPECT_EQ(layers.as_list()[0].location().column, 5);
  EXPECT_EQ(layers.as_list()[0].at("name").location().column, 14);
  EXPECT_EQ(layers.as_list()[1].location().line, 5);
  EXPECT_EQ(layers.as_list()[1].location().column, 5);
  // All values share one file name string.
  EXPECT_EQ(bits.location().file.get(), v.location().file.get());
}

TEST(JsonReader, ColumnsCountBytes) {
  const Value v = parse("{\"\xC3\xA9\": 1, \"k\": \"\xE2\x82\xAC\", \"z\": 2}");
  EXPECT_EQ(v.at("\xC3\xA9").location().column, 8);
  EXPECT_EQ(v.at("z").location().column, 28);
}

TEST(JsonReader, CrLfLineEndings) {
  const Value v = parse("[\r\n1,\r\n  2]");
  EXPECT_EQ(v.as_list()[1].location().line, 3);
  EXPECT_EQ(v.as_list()[1].location().column, 3);
  EXPECT_EQ(error_at("[\r\n1,\r\n  x]"), "3:3 expected a value, got 'x'");
}

TEST(JsonReader, LeadingByteOrderMarkIsSkipped) {
  const Value v = parse("\xEF\xBB\xBF{\"a\": [1]}");
  EXPECT_EQ(v.location().column, 1);
  EXPECT_EQ(v.at("a").location().column, 7);
  EXPECT_EQ(error_at("\xEF\xBB\xBF"), "1:1 empty input");
  EXPECT_EQ(error_at("\xEF\xBB\xBF x"), "1:2 expected a value, got 'x'");
}

TEST(JsonReader, ErrorMessagesNameTheSource) {
  try {
    parse_json("{\n  \"a\": 1\n  \"b\": 2\n}", "cfg/quant.json");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cfg/quant.json:3:3: expected ',' or '}' after an object member");
    EXPECT_EQ(*e.where().file, "cfg/quant.json");
  }
}

// ---- reader: structure errors ------------------------------------------------------------------

TEST(JsonReader, EmptyInput) {
  EXPECT_EQ(error_at(""), "1:1 empty input");
  EXPECT_EQ(error_at("  \n\t "), "1:1 empty input");
}

TEST(JsonReader, TrailingCommasPointAtTheComma) {
  EXPECT_EQ(error_at("[1, 2, ]"), "1:6 trailing comma");
  EXPECT_EQ(error_at("{\"a\": 1,\n}"), "1:8 trailing comma");
}

TEST(JsonReader, SeparatorErrors) {
  EXPECT_EQ(error_at(R"({"a": 1 "b": 2})"), "1:9 expected ',' or '}' after an object member");
  EXPECT_EQ(error_at(R"({"a": 1])"), "1:8 expected ',' or '}' after an object member");
  EXPECT_EQ(error_at("[1 2]"), "1:4 expected ',' or ']' after a list item");
  EXPECT_EQ(error_at("[1}"), "1:3 expected ',' or ']' after a list item");
  EXPECT_EQ(error_at(R"({"a" 1})"), "1:6 expected ':' after an object key");
  EXPECT_EQ(error_at(R"({a: 1})"), "1:2 expected a string key, got 'a'");
  EXPECT_EQ(error_at(R"({1: 1})"), "1:2 expected a string key, got '1'");
  EXPECT_EQ(error_at(R"({"a": 1, })"), "1:8 trailing comma");
  EXPECT_EQ(error_at("[,1]"), "1:2 expected a value, got ','");
  EXPECT_EQ(error_at("[1,,2]"), "1:4 expected a value, got ','");
}

TEST(JsonReader, UnexpectedEndOfInput) {
  EXPECT_EQ(error_at("["), "1:2 unexpected end of input, expected a value");
  EXPECT_EQ(error_at("[1,"), "1:4 unexpected end of input, expected a value");
  EXPECT_EQ(error_at("[1"), "1:3 unexpected end of input, expected ',' or ']' after a list item");
  EXPECT_EQ(error_at("{"), "1:2 unexpected end of input, expected an object key");
  EXPECT_EQ(error_at("{\"a\""), "1:5 expected ':' after an object key");
  EXPECT_EQ(error_at("{\"a\":"), "1:6 unexpected end of input, expected a value");
  EXPECT_EQ(error_at("{\"a\":1"),
            "1:7 unexpected end of input, expected ',' or '}' after an object member");
  EXPECT_EQ(error_at("tru"), "1:1 expected a value, got 't'");
}

TEST(JsonReader, UnexpectedDataAfterTheValue) {
  EXPECT_EQ(error_at("1 2"), "1:3 unexpected data after the JSON value");
  EXPECT_EQ(error_at("{}\n\n  x"), "3:3 unexpected data after the JSON value");
  EXPECT_EQ(error_at("[]]"), "1:3 unexpected data after the JSON value");
  EXPECT_EQ(error_at("truex"), "1:5 unexpected data after the JSON value");
  EXPECT_EQ(error_at("True"), "1:1 expected a value, got 'T'");
  EXPECT_EQ(error_at("\x01"), "1:1 expected a value, got byte 0x01");
}

TEST(JsonReader, DuplicateKeysAreErrors) {
  EXPECT_EQ(error_at("{\n  \"x\": 1,\n  \"y\": 2,\n  \"x\": 3\n}"),
            "4:3 duplicate key 'x' (first at line 2)");
  EXPECT_EQ(error_at(R"({"a": {"b": 1, "b": 2}})"), "1:16 duplicate key 'b' (first at line 1)");
  // The same key in different objects is fine.
  const Value v = parse(R"({"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]})");
  EXPECT_EQ(v.at("b").as_list()[1].at("a").as_int(), 3);
}

TEST(JsonReader, DuplicateKeysInLargeObjects) {
  // Past the linear-scan size the reader switches to a hash index, growing it as the object
  // grows; a repeat of any earlier key must be caught, whenever that key was seen.
  std::string text = "{";
  for (int i = 0; i < 100; ++i)
    text += "\n\"k" + std::to_string(i) + "\": " + std::to_string(i) + ",";
  for (int i = 0; i < 100; ++i) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(error_at(text + "\n\"" + key + "\": 0}"),
              "102:1 duplicate key '" + key + "' (first at line " + std::to_string(i + 2) + ")");
  }
  text.back() = '}';
  EXPECT_EQ(parse(text).size(), 100u);
}

TEST(JsonReader, KeyLinesOfNestedObjectsDoNotMixWithTheParent) {
  // After the nested object closes, the parent's "first at" line must still be its own.
  EXPECT_EQ(error_at("{\"a\": 1,\n\"n\": {\"p\": 1,\n\"q\": 2},\n\"a\": 2}"),
            "4:1 duplicate key 'a' (first at line 1)");
}

// ---- reader: limits ----------------------------------------------------------------------------

std::string nested_lists(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonReader, NestingUpToTheLimitIsFine) {
  Value v = parse(nested_lists(128));
  int depth = 0;
  for (const Value* p = &v; p->is_list() && p->size() > 0; p = &p->as_list()[0])
    ++depth;
  EXPECT_EQ(depth, 127);  // the innermost list is empty
}

TEST(JsonReader, NestingPastTheLimitThrows) {
  EXPECT_EQ(error_at(nested_lists(129)), "1:129 nesting deeper than 128");
  std::string maps;
  for (int i = 0; i < 129; ++i)
    maps += "{\"a\":";
  EXPECT_EQ(error_at(maps + "1" + std::string(129, '}')), "1:641 nesting deeper than 128");
  // Far too deep for the stack if the reader recursed without a limit.
  EXPECT_EQ(error_at(std::string(1000000, '[')), "1:129 nesting deeper than 128");

  JsonParseOptions shallow;
  shallow.max_depth = 2;
  EXPECT_EQ(parse_json("[[1]]", "x", shallow), Value::list({Value::list({1})}));
  EXPECT_EQ(error_at("[[[1]]]", shallow), "1:3 nesting deeper than 2");
}

TEST(JsonReader, LargeInputs) {
  // A safetensors-header-sized object: many entries, long strings; must parse in linear time.
  std::string text = "{";
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    if (i > 0) text += ",";
    text += "\"model.layers." + std::to_string(i) +
            ".weight\":{\"dtype\":\"BF16\",\"shape\":[4096,4096],\"data_offsets\":[0,1]}";
  }
  text += "}";
  const Value v = parse(text);
  ASSERT_EQ(v.size(), static_cast<size_t>(n));
  EXPECT_EQ(v.as_map().back().second.at("dtype").as_string(), "BF16");

  const std::string long_string = "\"" + std::string(20 << 20, 'a') + "\\n\"";
  EXPECT_EQ(parse(long_string).as_string().size(), (20u << 20) + 1);
}

// ---- writer ------------------------------------------------------------------------------------

// The document the Python literals below were made from:
// {"zeta": [1, 2.5, {"b": None, "a": True}], "alpha": {"y": [], "x": {}},
//  "mid": "é€😀\x7f\x01\n\t\"\\/"}
Value python_document() {
  return Value::map({
      {"zeta", Value::list({1, 2.5, Value::map({{"b", Value()}, {"a", true}})})},
      {"alpha", Value::map({{"y", Value::list()}, {"x", Value::map()}})},
      {"mid", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F\x01\n\t\"\\/"},
  });
}

TEST(JsonWriter, CompactMatchesPython) {
  EXPECT_EQ(to_json(python_document()),
            R"({"zeta": [1, 2.5, {"b": null, "a": true}], "alpha": {"y": [], "x": {}}, )"
            R"("mid": "\u00e9\u20ac\ud83d\ude00\u007f\u0001\n\t\"\\/"})");
}

TEST(JsonWriter, IndentTwoSortedMatchesPython) {
  JsonWriteOptions options;
  options.indent = 2;
  options.sort_keys = true;
  EXPECT_EQ(to_json(python_document(), options),
            "{\n"
            "  \"alpha\": {\n"
            "    \"x\": {},\n"
            "    \"y\": []\n"
            "  },\n"
            "  \"mid\": \"\\u00e9\\u20ac\\ud83d\\ude00\\u007f\\u0001\\n\\t\\\"\\\\/\",\n"
            "  \"zeta\": [\n"
            "    1,\n"
            "    2.5,\n"
            "    {\n"
            "      \"a\": true,\n"
            "      \"b\": null\n"
            "    }\n"
            "  ]\n"
            "}");
}

TEST(JsonWriter, IndentZeroMatchesPython) {
  JsonWriteOptions options;
  options.indent = 0;
  EXPECT_EQ(to_json(python_document(), options),
            "{\n\"zeta\": [\n1,\n2.5,\n{\n\"b\": null,\n\"a\": true\n}\n],\n\"alpha\": {\n"
            "\"y\": [],\n\"x\": {}\n},\n"
            "\"mid\": \"\\u00e9\\u20ac\\ud83d\\ude00\\u007f\\u0001\\n\\t\\\"\\\\/\"\n}");
}

TEST(JsonWriter, IndentFourMatchesPython) {
  JsonWriteOptions options;
  options.indent = 4;
  const Value v =
      Value::map({{"k", Value::list({1, Value::list({2, Value::list()}), Value::map()})}});
  EXPECT_EQ(to_json(v, options),
            "{\n    \"k\": [\n        1,\n        [\n            2,\n            []\n        ],\n"
            "        {}\n    ]\n}");
}

TEST(JsonWriter, EmptyContainers) {
  JsonWriteOptions pretty;
  pretty.indent = 2;
  EXPECT_EQ(to_json(Value::map()), "{}");
  EXPECT_EQ(to_json(Value::list()), "[]");
  EXPECT_EQ(to_json(Value::map(), pretty), "{}");
  EXPECT_EQ(to_json(Value::list({Value::list()}), pretty), "[\n  []\n]");
}

TEST(JsonWriter, EnsureAsciiFalseMatchesPython) {
  JsonWriteOptions options;
  options.ensure_ascii = false;
  EXPECT_EQ(to_json(python_document(), options),
            "{\"zeta\": [1, 2.5, {\"b\": null, \"a\": true}], \"alpha\": {\"y\": [], \"x\": {}}, "
            "\"mid\": \"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F\\u0001\\n\\t\\\"\\\\/\"}");
}

TEST(JsonWriter, StringEscapesMatchPython) {
  JsonWriteOptions raw;
  raw.ensure_ascii = false;
  EXPECT_EQ(to_json("\xC3\xA9"), R"("\u00e9")");
  EXPECT_EQ(to_json("\xE2\x82\xAC"), R"("\u20ac")");
  EXPECT_EQ(to_json("\xF0\x9F\x98\x80"), R"("\ud83d\ude00")");
  EXPECT_EQ(to_json("\x7F"), R"("\u007f")");
  EXPECT_EQ(to_json("\x01"), R"("\u0001")");
  EXPECT_EQ(to_json("\x1F\b\f\r"), R"("\u001f\b\f\r")");
  EXPECT_EQ(to_json(std::string("a\0b", 3)), R"("a\u0000b")");
  EXPECT_EQ(to_json("a\xE2\x80\xA8"
                    "b"),
            R"("a\u2028b")");
  EXPECT_EQ(to_json("\xC3\xA9", raw), "\"\xC3\xA9\"");
  EXPECT_EQ(to_json("\xF0\x9F\x98\x80", raw), "\"\xF0\x9F\x98\x80\"");
  EXPECT_EQ(to_json("\x7F", raw), "\"\x7F\"");
  EXPECT_EQ(to_json("\x01", raw), R"("\u0001")");
  EXPECT_EQ(to_json("\x1F\b\f\r", raw), R"("\u001f\b\f\r")");
  EXPECT_EQ(to_json("plain / text", raw), R"("plain / text")");
}

TEST(JsonWriter, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  EXPECT_EQ(to_json("a\xFF"
                    "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(to_json("\xC3"), R"("\ufffd")");                      // truncated sequence
  EXPECT_EQ(to_json("\xC0\xAF"), R"("\ufffd\ufffd")");            // overlong '/'
  EXPECT_EQ(to_json("\xED\xA0\x80"), R"("\ufffd\ufffd\ufffd")");  // encoded surrogate
}

TEST(JsonWriter, ScalarsMatchPython) {
  const Value v = Value::list({std::nan(""), std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity(), -0.0, 1e16, 1e-5, 5, -7,
                               true, false, Value()});
  EXPECT_EQ(to_json(v), "[NaN, Infinity, -Infinity, -0.0, 1e+16, 1e-05, 5, -7, true, false, null]");
  EXPECT_EQ(to_json(std::numeric_limits<int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(to_json(std::numeric_limits<int64_t>::max()), "9223372036854775807");
}

TEST(JsonWriter, SortKeysUsesCodePointOrder) {
  JsonWriteOptions sorted;
  sorted.sort_keys = true;
  const Value v = Value::map(
      {{"b", 1}, {"a", Value::map({{"d", 2}, {"c", 3}})}, {"B", 0}, {"\xC3\xA9", 1}, {"z", 2}});
  EXPECT_EQ(to_json(v, sorted), R"({"B": 0, "a": {"c": 3, "d": 2}, "b": 1, "z": 2, "\u00e9": 1})");
  // Without sort_keys, insertion order.
  EXPECT_EQ(to_json(v), R"({"b": 1, "a": {"d": 2, "c": 3}, "B": 0, "\u00e9": 1, "z": 2})");
}

TEST(JsonWriter, PythonOutputRoundTripsByteForByte) {
  const std::string texts[] = {
      R"({"zeta": [1, 2.5, {"b": null, "a": true}], "alpha": {"y": [], "x": {}}, )"
      R"("mid": "\u00e9\u20ac\ud83d\ude00\u007f\u0001\n\t\"\\/"})",
      "[NaN, Infinity, -Infinity, -0.0, 1e+16, 1e-05, 5, -7, true, false, null]",
      R"({"B": 0, "a": {"c": 3, "d": 2}, "b": 1, "z": 2, "\u00e9": 1})",
  };
  for (const auto& text : texts)
    EXPECT_EQ(to_json(parse(text)), text);
}

TEST(JsonWriter, ValuesRoundTripThroughText) {
  const Value v = python_document();
  EXPECT_EQ(parse(to_json(v)), v);
  JsonWriteOptions pretty;
  pretty.indent = 3;
  pretty.ensure_ascii = false;
  EXPECT_EQ(parse(to_json(v, pretty)), v);
  const Value numbers = Value::list({0.1, 1.0 / 3, 5e-324, 1.7976931348623157e308, -0.0, 6.0,
                                     std::numeric_limits<int64_t>::min()});
  const Value back = parse(to_json(numbers));
  EXPECT_EQ(back, numbers);
  EXPECT_TRUE(back.as_list()[5].is_float());  // 6.0 stays a float
  EXPECT_TRUE(std::signbit(back.as_list()[4].as_double()));
}

// ---- python_float_repr -------------------------------------------------------------------------

TEST(PythonFloatRepr, MatchesPythonRepr) {
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1.5e16), "1.5e+16");
  EXPECT_EQ(python_float_repr(2.605437994003296), "2.605437994003296");
  EXPECT_EQ(python_float_repr(6.0), "6.0");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(5e-324), "5e-324");
  EXPECT_EQ(python_float_repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(python_float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(python_float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(0.00001234), "1.234e-05");
  EXPECT_EQ(python_float_repr(2.5e-7), "2.5e-07");
  EXPECT_EQ(python_float_repr(1e22), "1e+22");
  EXPECT_EQ(python_float_repr(-1.5), "-1.5");
  EXPECT_EQ(python_float_repr(100.0), "100.0");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(0.5e-3), "0.0005");
  EXPECT_EQ(python_float_repr(12345678901234567890.0), "1.2345678901234567e+19");
  EXPECT_EQ(python_float_repr(1e-7), "1e-07");
  EXPECT_EQ(python_float_repr(3.14159), "3.14159");
}

TEST(PythonFloatRepr, NonFinite) {
  EXPECT_EQ(python_float_repr(std::nan("")), "nan");
  EXPECT_EQ(python_float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(python_float_repr(-std::numeric_limits<double>::infinity()), "-inf");
}

}  // namespace
}  // namespace qplug
