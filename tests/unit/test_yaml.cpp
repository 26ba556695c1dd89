// The YAML reader (core schema typing, positions, duplicate keys, tags, anchors, limits) and
// config file loading (format detection, Hugging Face config.json, errors naming the file).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include "qplug/core/config_file.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

Value yaml(const std::string& text) {
  return parse_yaml(text, "q.yaml");
}

// The value of key "v" in the one-line document "v: <scalar>".
Value scalar(const std::string& text) {
  return yaml("v: " + text).at("v");
}

ConfigError yaml_error(const std::string& text) {
  try {
    parse_yaml(text, "q.yaml");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ConfigError for: " << text;
  return ConfigError("no error was thrown");
}

// The error's position and message in one string, so a failure shows all three.
std::string error_at(const std::string& text) {
  ConfigError e = yaml_error(text);
  return std::to_string(e.where().line) + ":" + std::to_string(e.where().column) + " " + e.detail();
}

// ---- core schema -------------------------------------------------------------------------------

TEST(YamlReader, NullForms) {
  for (const char* text : {"~", "null", "Null", "NULL", ""}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(scalar(text).is_null());
  }
  EXPECT_TRUE(scalar("nULL").is_string());
}

TEST(YamlReader, BoolForms) {
  for (const char* text : {"true", "True", "TRUE"})
    EXPECT_EQ(scalar(text), Value(true)) << text;
  for (const char* text : {"false", "False", "FALSE"})
    EXPECT_EQ(scalar(text), Value(false)) << text;
  // YAML 1.1's yes/no/on/off are plain strings in the 1.2 core schema.
  for (const char* text : {"yes", "no", "on", "off", "tRUE"}) {
    EXPECT_TRUE(scalar(text).is_string()) << text;
    EXPECT_EQ(scalar(text).as_string(), text);
  }
}

TEST(YamlReader, IntegerForms) {
  const std::pair<const char*, int64_t> cases[] = {
      {"123", 123},
      {"+12", 12},
      {"-12", -12},
      {"0", 0},
      {"-0", 0},
      {"007", 7},
      {"0o17", 15},
      {"0x1F", 31},
      {"0x1f", 31},
      {"0x0", 0},
      {"9223372036854775807", std::numeric_limits<int64_t>::max()},
      {"-9223372036854775808", std::numeric_limits<int64_t>::min()},
      {"0x7FFFFFFFFFFFFFFF", std::numeric_limits<int64_t>::max()},
  };
  for (const auto& [text, expected] : cases) {
    const Value v = scalar(text);
    EXPECT_TRUE(v.is_int()) << text;
    EXPECT_EQ(v.as_int(), expected) << text;
  }
}

TEST(YamlReader, IntegersOutOfRangeAreErrors) {
  EXPECT_EQ(error_at("v: 9223372036854775808"), "1:4 integer out of range: 9223372036854775808");
  EXPECT_EQ(error_at("v: -9223372036854775809"), "1:4 integer out of range: -9223372036854775809");
  EXPECT_EQ(error_at("a: 1\nv: [1, 0xFFFFFFFFFFFFFFFF]"),
            "2:8 integer out of range: 0xFFFFFFFFFFFFFFFF");
  EXPECT_EQ(error_at("v: 0o7777777777777777777777"),
            "1:4 integer out of range: 0o7777777777777777777777");
}

TEST(YamlReader, FloatForms) {
  const std::pair<const char*, double> cases[] = {
      {"1.5", 1.5},         {"1e3", 1000.0}, {"1E3", 1000.0},    {"1.5e+3", 1500.0},
      {"-2.5e-3", -0.0025}, {"1.", 1.0},     {".5", 0.5},        {"+.5", 0.5},
      {"-.5", -0.5},        {"6.0", 6.0},    {"0.5e-3", 0.0005}, {"1e-400", 0.0},
  };
  for (const auto& [text, expected] : cases) {
    const Value v = scalar(text);
    EXPECT_TRUE(v.is_float()) << text;
    EXPECT_EQ(v.as_double(), expected) << text;
  }
  EXPECT_TRUE(std::signbit(scalar("-0.0").as_double()));
  EXPECT_TRUE(std::signbit(scalar("-1e-400").as_double()));
}

TEST(YamlReader, NonFiniteFloats) {
  const double inf = std::numeric_limits<double>::infinity();
  for (const char* text : {".inf", ".Inf", ".INF", "+.inf"})
    EXPECT_EQ(scalar(text), Value(inf)) << text;
  for (const char* text : {"-.inf", "-.Inf", "-.INF"})
    EXPECT_EQ(scalar(text), Value(-inf)) << text;
  for (const char* text : {".nan", ".NaN", ".NAN"})
    EXPECT_TRUE(std::isnan(scalar(text).as_double())) << text;
  EXPECT_TRUE(scalar("-.nan").is_string());  // NaN has no sign in the core schema
  EXPECT_TRUE(scalar(".iNf").is_string());
}

TEST(YamlReader, FloatOverflowIsAnError) {
  EXPECT_EQ(error_at("v: 1e400"), "1:4 number out of range (overflows a double): 1e400");
  EXPECT_EQ(error_at("v: -1.8e308"), "1:4 number out of range (overflows a double): -1.8e308");
}

TEST(YamlReader, EverythingElseIsAString) {
  for (const char* text : {"-0x1F", "0b101", "1_000", "12abc", "0o8", "0xG", "0x", "1e", "e3", ".",
                           "1.2.3", "+", "q_proj", "1:2", "v1.0"}) {
    const Value v = scalar(text);
    EXPECT_TRUE(v.is_string()) << text;
    EXPECT_EQ(v.as_string(), text);
  }
}

TEST(YamlReader, QuotedScalarsAreAlwaysStrings) {
  EXPECT_EQ(scalar("\"123\""), Value("123"));
  EXPECT_EQ(scalar("'true'"), Value("true"));
  EXPECT_EQ(scalar("'~'"), Value("~"));
  EXPECT_EQ(scalar("''"), Value(""));
  EXPECT_EQ(scalar("'it''s'"), Value("it's"));
  EXPECT_EQ(scalar("\"\\u00e9\\t\""), Value("\xC3\xA9\t"));
}

TEST(YamlReader, BlockScalars) {
  const Value v = yaml("a: |\n  line1\n  line2\nb: >-\n  folded\n  text\n");
  EXPECT_EQ(v.at("a").as_string(), "line1\nline2\n");
  EXPECT_EQ(v.at("b").as_string(), "folded text");
}

// ---- tags --------------------------------------------------------------------------------------

TEST(YamlReader, CoreTags) {
  const Value v = yaml(
      "a: !!int \"42\"\n"
      "b: !!float 1\n"
      "c: !!str 12\n"
      "d: ! 12\n"
      "e: !!map {x: 1}\n"
      "f: !!seq [1]\n"
      "g: !!null ~\n"
      "h: !!bool True\n"
      "i: !<tag:yaml.org,2002:str> 5\n"
      "j: !!float .inf\n");
  EXPECT_TRUE(v.at("a").is_int());
  EXPECT_EQ(v.at("a").as_int(), 42);
  EXPECT_TRUE(v.at("b").is_float());
  EXPECT_EQ(v.at("b").as_double(), 1.0);
  EXPECT_EQ(v.at("c"), Value("12"));
  EXPECT_EQ(v.at("d"), Value("12"));
  EXPECT_EQ(v.at("e"), Value::map({{"x", 1}}));
  EXPECT_EQ(v.at("f"), Value::list({1}));
  EXPECT_TRUE(v.at("g").is_null());
  EXPECT_EQ(v.at("h"), Value(true));
  EXPECT_EQ(v.at("i"), Value("5"));
  EXPECT_EQ(v.at("j").as_double(), std::numeric_limits<double>::infinity());
}

TEST(YamlReader, TaggedValuesMustMatchTheirTag) {
  EXPECT_EQ(error_at("v: !!int abc"), "1:4 'abc' is not a valid !!int");
  EXPECT_EQ(error_at("v: !!int 1.5"), "1:4 '1.5' is not a valid !!int");
  EXPECT_EQ(error_at("v: !!float yes"), "1:4 'yes' is not a valid !!float");
  EXPECT_EQ(error_at("v: !!bool 1"), "1:4 '1' is not a valid !!bool");
  EXPECT_EQ(error_at("v: !!null 0"), "1:4 '0' is not a valid !!null");
}

TEST(YamlReader, OtherTagsAreErrors) {
  EXPECT_EQ(error_at("a: 1\nv: !foo x"),
            "2:4 unsupported tag '!foo' (only the YAML core tags are allowed)");
  EXPECT_EQ(error_at("v: !!binary aGVsbG8="),
            "1:4 unsupported tag '!!binary' (only the YAML core tags are allowed)");
  EXPECT_EQ(error_at("v: !!set {x}"),
            "1:4 unsupported tag '!!set' (only the YAML core tags are allowed)");
  EXPECT_EQ(error_at("v: !!map [1]"),
            "1:4 unsupported tag '!!map' (only the YAML core tags are allowed)");
  EXPECT_EQ(error_at("v: !!python/tuple [1]"),
            "1:4 unsupported tag '!!python/tuple' (only the YAML core tags are allowed)");
}

// ---- positions ---------------------------------------------------------------------------------

TEST(YamlReader, EveryValueKnowsItsPosition) {
  const Value v = parse_yaml(
      "bits: 4\n"
      "modules:\n"
      "  - q_proj\n"
      "  - {name: k, group: [1, 2]}\n"
      "\"quoted\": ~\n"
      "nested:\n"
      "  deeper:\n"
      "    x: 1.5\n",
      "cfg/quant.yaml");
  EXPECT_EQ(v.location().str(), "cfg/quant.yaml:1:1");
  EXPECT_EQ(v.at("bits").location().str(), "cfg/quant.yaml:1:7");
  const Value& modules = v.at("modules");
  EXPECT_EQ(modules.location().line, 3);
  EXPECT_EQ(modules.location().column, 3);
  EXPECT_EQ(modules.as_list()[0].location().column, 5);
  const Value& second = modules.as_list()[1];
  EXPECT_EQ(second.location().line, 4);
  EXPECT_EQ(second.location().column, 5);
  EXPECT_EQ(second.at("name").location().column, 12);
  EXPECT_EQ(second.at("group").location().column, 22);
  EXPECT_EQ(second.at("group").as_list()[1].location().column, 26);
  EXPECT_EQ(v.at("quoted").location().line, 5);
  EXPECT_EQ(v.at("quoted").location().column, 11);
  EXPECT_EQ(v.at("nested").at("deeper").at("x").location().str(), "cfg/quant.yaml:8:8");
  EXPECT_EQ(v.at("bits").location().file.get(), v.location().file.get());
}

TEST(YamlReader, MapsKeepTheirOrder) {
  const Value v = yaml("z: 1\na: 2\nm: 3\n");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v.as_map()[0].first, "z");
  EXPECT_EQ(v.as_map()[1].first, "a");
  EXPECT_EQ(v.as_map()[2].first, "m");
}

TEST(YamlReader, ByteOrderMarkIsSkipped) {
  const Value v = yaml(
      "\xEF\xBB\xBF"
      "a: 1\n");
  EXPECT_EQ(v.at("a").location().column, 4);
}

TEST(YamlReader, SyntaxErrorsCarryYamlCppsPosition) {
  EXPECT_EQ(error_at("a: b: c"), "1:5 illegal map value");
  EXPECT_EQ(error_at("k: v\n  bad: indent"), "2:6 illegal map value");
  EXPECT_EQ(error_at("a: \"unterminated"), "1:17 illegal EOF in scalar");
  EXPECT_EQ(error_at("x: *nope"), "1:4 the referenced anchor is not defined");
  try {
    parse_yaml("ok: 1\na: b: c", "dir/bad.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "dir/bad.yaml:2:5: illegal map value");
  }
}

// ---- keys --------------------------------------------------------------------------------------

TEST(YamlReader, DuplicateKeysAreErrors) {
  EXPECT_EQ(error_at("a: 1\nb: 2\na: 3\n"), "3:1 duplicate key 'a' (first at line 1)");
  EXPECT_EQ(error_at("m:\n  x: 1\n\n  x: 2\n"), "4:3 duplicate key 'x' (first at line 2)");
  EXPECT_EQ(error_at("{a: 1, a: 2}"), "1:8 duplicate key 'a' (first at line 1)");
  EXPECT_EQ(error_at("a: 1\n'a': 2\n"), "2:1 duplicate key 'a' (first at line 1)");
  // The same key in different maps is fine.
  const Value v = yaml("a: {a: 1}\nb: [{a: 2}, {a: 3}]\n");
  EXPECT_EQ(v.at("b").as_list()[1].at("a").as_int(), 3);
}

TEST(YamlReader, ScalarKeysAreTheirText) {
  const Value v = yaml(
      "1: a\ntrue: b\n0x10: c\n1.50: d\n99999999999999999999: e\n1e400: f\n'q': g\n!!str 5: h\n");
  EXPECT_EQ(v.at("1"), Value("a"));
  EXPECT_EQ(v.at("true"), Value("b"));
  EXPECT_EQ(v.at("0x10"), Value("c"));
  EXPECT_EQ(v.at("1.50"), Value("d"));
  EXPECT_EQ(v.at("99999999999999999999"), Value("e"));  // out of int64 range, but only a key
  EXPECT_EQ(v.at("1e400"), Value("f"));
  EXPECT_EQ(v.at("q"), Value("g"));
  EXPECT_EQ(v.at("5"), Value("h"));
  EXPECT_EQ(error_at("!foo k: 1"),
            "1:1 unsupported tag '!foo' (only the YAML core tags are allowed)");
}

TEST(YamlReader, NonScalarKeysAreErrors) {
  EXPECT_EQ(error_at("? [1, 2]\n: x"), "1:3 a map key must be a string, got a list");
  EXPECT_EQ(error_at("? {a: 1}\n: x"), "1:3 a map key must be a string, got a map");
  EXPECT_EQ(error_at("[1, 2]: x"), "1:1 a map key must be a string, got a list");
  EXPECT_EQ(error_at("~: 1"), "1:1 a map key must be a string, got null");
  EXPECT_EQ(error_at("a: 1\n: 2"), "2:1 a map key must be a string, got null");
  EXPECT_EQ(error_at("l: &l [1]\n*l : 2"), "2:1 a map key must be a string, got a list");
  EXPECT_EQ(error_at("n: &n ~\n*n : 2"), "2:1 a map key must be a string, got null");
}

// ---- anchors and aliases -----------------------------------------------------------------------

TEST(YamlReader, AliasesAreResolvedToCopies) {
  const Value v = yaml(
      "defaults: &d\n"
      "  bits: 4\n"
      "  sym: true\n"
      "layer: *d\n"
      "name: &n q_proj\n"
      "also: *n\n"
      "*n : keyed by alias\n");
  EXPECT_EQ(v.at("layer"), v.at("defaults"));
  EXPECT_EQ(v.at("layer").location().line, 4);  // the alias's own position
  EXPECT_EQ(v.at("layer").location().column, 8);
  EXPECT_EQ(v.at("layer").at("bits").location().line, 2);  // inside: where the anchor defines it
  EXPECT_EQ(v.at("also"), Value("q_proj"));
  EXPECT_EQ(v.at("q_proj"), Value("keyed by alias"));
}

TEST(YamlReader, AnAnchorCanBeRedefined) {
  const Value v = yaml("a: &x 1\nb: *x\nc: &x 2\nd: *x\n");
  EXPECT_EQ(v.at("b").as_int(), 1);
  EXPECT_EQ(v.at("d").as_int(), 2);
}

TEST(YamlReader, RecursiveAliasesAreErrors) {
  EXPECT_EQ(error_at("x: &a [1, *a]"), "1:11 alias *a refers to a node that contains it");
  EXPECT_EQ(error_at("x: &m\n  y: *m\n"), "2:6 alias *m refers to a node that contains it");
}

TEST(YamlReader, AliasExpansionIsBounded) {
  // "Billion laughs": ten levels of ten aliases each would expand to 10^10 values.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k)
      text += (k ? ", " : "") + prev;
    text += "]\n";
  }
  EXPECT_EQ(yaml_error(text).detail(), "aliases expand to more than 1000000 values");
}

// ---- documents and limits ----------------------------------------------------------------------

TEST(YamlReader, EmptyDocumentsAreNull) {
  EXPECT_TRUE(yaml("").is_null());
  EXPECT_TRUE(yaml("# only a comment\n\n").is_null());
  EXPECT_TRUE(yaml("---\n").is_null());
  EXPECT_EQ(*yaml("").location().file, "q.yaml");
}

TEST(YamlReader, ExplicitDocumentMarkers) {
  EXPECT_EQ(yaml("---\na: 1\n"), Value::map({{"a", 1}}));
  EXPECT_EQ(yaml("a: 1\n...\n"), Value::map({{"a", 1}}));
  EXPECT_EQ(yaml("--- 5\n"), Value(5));
}

TEST(YamlReader, MoreThanOneDocumentIsAnError) {
  EXPECT_EQ(error_at("a: 1\n---\nb: 2\n"),
            "2:1 more than one document (a config file holds exactly one)");
  EXPECT_EQ(error_at("a: 1\n---\n"),
            "2:1 more than one document (a config file holds exactly one)");
  EXPECT_EQ(error_at("\xEF\xBB\xBF"
                     "a: 1\n---\nb: 2\n"),
            "2:1 more than one document (a config file holds exactly one)");
  EXPECT_EQ(error_at("- a\nb: 1\n"), "2:1 unexpected content after the end of the top-level node");
}

std::string nested_flow_lists(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(YamlReader, NestingIsLimited) {
  Value v = yaml(nested_flow_lists(128));
  EXPECT_TRUE(v.is_list());
  EXPECT_EQ(error_at(nested_flow_lists(129)), "1:129 nesting deeper than 128");
  std::string block;
  for (int i = 0; i < 200; ++i)
    block += std::string(i, ' ') + "a:\n";
  EXPECT_EQ(error_at(block), "129:129 nesting deeper than 128");
  // Deeper than yaml-cpp's own recursion guard, and unbalanced: must throw, not crash.
  EXPECT_THROW(yaml(std::string(100000, '[')), ConfigError);
  EXPECT_THROW(yaml(nested_flow_lists(5000)), ConfigError);
}

// ---- config files ------------------------------------------------------------------------------

class ConfigFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  ConfigError load_error(const std::string& path) {
    try {
      load_config_file(path);
    } catch (const ConfigError& e) {
      return e;
    }
    ADD_FAILURE() << "expected a ConfigError loading " << path;
    return ConfigError("no error was thrown");
  }

  testing::TempDir dir_;
};

TEST_F(ConfigFileTest, ReadTextFileReadsBytesExactly) {
  const std::string content("a\r\nb\0c\xFF", 7);
  EXPECT_EQ(read_text_file(write("raw.bin", content)), content);
  std::string big(300000, 'x');
  big[123456] = 'y';
  EXPECT_EQ(read_text_file(write("big.txt", big)), big);
  EXPECT_EQ(read_text_file(write("empty.txt", "")), "");
}

TEST_F(ConfigFileTest, ReadTextFileErrorsNameTheFile) {
  const std::string missing = (dir_ / "missing.yaml").string();
  try {
    read_text_file(missing);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot read the file: No such file or directory");
  }
  const std::string folder = dir_.path().string();
  try {
    read_text_file(folder);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), folder + ": cannot read the file: Is a directory");
  }
}

TEST_F(ConfigFileTest, LoadsYaml) {
  const std::string path = write("quant.yaml", "quant_method: rtn\nbits: 4\n");
  const Value v = load_config_file(path);
  EXPECT_EQ(v, Value::map({{"quant_method", "rtn"}, {"bits", 4}}));
  EXPECT_EQ(v.at("bits").location().str(), path + ":2:7");
}

TEST_F(ConfigFileTest, JsonByExtension) {
  // In YAML a trailing comma in a flow map is fine; the JSON reader rejects it.
  const std::string path = write("q.JSON", "\n\n  [1,]");
  const ConfigError e = load_error(path);
  EXPECT_EQ(std::string(e.what()), path + ":3:5: trailing comma");
}

TEST_F(ConfigFileTest, JsonByFirstCharacter) {
  const std::string path =
      write("q.cfg", "\xEF\xBB\xBF  \n {\"quant_method\": \"rtn\", \"b\": NaN,}");
  const ConfigError e = load_error(path);
  EXPECT_EQ(std::string(e.what()), path + ":2:34: trailing comma");
  const Value v = load_config_file(write("ok.cfg", "{\"quant_method\": \"rtn\", \"b\": NaN}"));
  EXPECT_TRUE(std::isnan(v.at("b").as_double()));  // YAML would have read the string "NaN"
}

TEST_F(ConfigFileTest, YamlFlowMapIsNotMistakenForJson) {
  // '{' after other content is still YAML.
  const Value v = load_config_file(write("q.yaml", "# comment\n{a: 1, b: [x, y],}\n"));
  EXPECT_EQ(v, Value::map({{"a", 1}, {"b", Value::list({"x", "y"})}}));
}

TEST_F(ConfigFileTest, EmptyFilesAreErrors) {
  const std::string empty = write("empty.yaml", "");
  EXPECT_EQ(std::string(load_error(empty).what()), empty + ": the file is empty");
  const std::string blank = write("blank.json", " \n\t\r\n");
  EXPECT_EQ(std::string(load_error(blank).what()), blank + ": the file is empty");
}

TEST_F(ConfigFileTest, TopLevelMustBeAMap) {
  const std::string list = write("list.yaml", "\n- a\n- b\n");
  EXPECT_EQ(std::string(load_error(list).what()),
            list + ":2:1: a config must be a map of keys, got list");
  const std::string number = write("n.json", "42");
  EXPECT_EQ(std::string(load_error(number).what()),
            number + ":1:1: a config must be a map of keys, got integer");
  const std::string comments = write("c.yaml", "# nothing here\n");
  EXPECT_EQ(std::string(load_error(comments).what()),
            comments + ": a config must be a map of keys, got null");
}

TEST_F(ConfigFileTest, HuggingFaceConfigYieldsItsQuantizationConfig) {
  const std::string path = write("config.json",
                                 "{\n"
                                 "  \"architectures\": [\"LlamaForCausalLM\"],\n"
                                 "  \"quantization_config\": {\n"
                                 "    \"quant_method\": \"gptq\",\n"
                                 "    \"bits\": 4\n"
                                 "  }\n"
                                 "}\n");
  const Value v = load_config_file(path);
  EXPECT_EQ(v, Value::map({{"quant_method", "gptq"}, {"bits", 4}}));
  EXPECT_EQ(v.location().str(), path + ":3:26");
  EXPECT_EQ(v.at("bits").location().str(), path + ":5:13");
}

TEST_F(ConfigFileTest, QuantizationConfigIsOnlyUnwrappedWhenItApplies) {
  // A map with its own quant_method is already a quantization config.
  const Value own = load_config_file(
      write("a.yaml", "quant_method: rtn\nquantization_config: {quant_method: gptq}\n"));
  EXPECT_EQ(own.at("quant_method"), Value("rtn"));
  // A quantization_config that is not a map is an ordinary key.
  const Value scalar_inner = load_config_file(write("b.yaml", "quantization_config: 4\n"));
  EXPECT_EQ(scalar_inner, Value::map({{"quantization_config", 4}}));
}

TEST_F(ConfigFileTest, ParseErrorsNameTheFile) {
  const std::string yaml_path = write("bad.yaml", "a: 1\na: 2\n");
  EXPECT_EQ(std::string(load_error(yaml_path).what()),
            yaml_path + ":2:1: duplicate key 'a' (first at line 1)");
  const std::string missing = (dir_ / "nope.yaml").string();
  const ConfigError e = load_error(missing);
  ASSERT_TRUE(e.where().known());
  EXPECT_EQ(*e.where().file, missing);
}

}  // namespace
}  // namespace qplug
