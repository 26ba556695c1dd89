// qplug::Value: kinds, typed access and its errors, map editing, equality and brief().

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "qplug/sdk/value.hpp"

namespace qplug {
namespace {

SourceLocation at(int line, int column) {
  return SourceLocation{std::make_shared<const std::string>("cfg.yaml"), line, column};
}

// Runs f, which must throw ConfigError, and returns the error.
template <typename F>
ConfigError config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return ConfigError("no error was thrown");
}

TEST(ValueTest, KindsOfConstructedValues) {
  EXPECT_EQ(Value().kind(), Value::Kind::Null);
  EXPECT_EQ(Value(true).kind(), Value::Kind::Bool);
  EXPECT_EQ(Value(3).kind(), Value::Kind::Int);
  EXPECT_EQ(Value(int64_t{1} << 40).kind(), Value::Kind::Int);
  EXPECT_EQ(Value(2.5).kind(), Value::Kind::Float);
  EXPECT_EQ(Value("s").kind(), Value::Kind::String);
  EXPECT_EQ(Value(std::string("s")).kind(), Value::Kind::String);
  EXPECT_EQ(Value::list().kind(), Value::Kind::List);
  EXPECT_EQ(Value::map().kind(), Value::Kind::Map);
  EXPECT_TRUE(Value(static_cast<const char*>(nullptr)).is_null());
  EXPECT_TRUE(Value(1).is_number());
  EXPECT_TRUE(Value(1.0).is_number());
  EXPECT_FALSE(Value("1").is_number());
}

TEST(ValueTest, KindNames) {
  EXPECT_STREQ(Value().kind_name(), "null");
  EXPECT_STREQ(Value(false).kind_name(), "bool");
  EXPECT_STREQ(Value(1).kind_name(), "integer");
  EXPECT_STREQ(Value(1.5).kind_name(), "float");
  EXPECT_STREQ(Value("x").kind_name(), "string");
  EXPECT_STREQ(Value::list().kind_name(), "list");
  EXPECT_STREQ(Value::kind_name(Value::Kind::Map), "map");
}

TEST(ValueTest, TypedAccess) {
  EXPECT_TRUE(Value(true).as_bool());
  EXPECT_EQ(Value(-7).as_int(), -7);
  EXPECT_EQ(Value(std::numeric_limits<int64_t>::max()).as_int(),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Value(2.5).as_double(), 2.5);
  EXPECT_EQ(Value(4).as_double(), 4.0);
  EXPECT_EQ(Value("abc").as_string(), "abc");
  EXPECT_EQ(Value::list({1, 2}).as_list().size(), 2u);
  EXPECT_EQ(Value::map({{"a", 1}}).as_map().at(0).first, "a");
}

TEST(ValueTest, AsIntAcceptsIntegralFloats) {
  EXPECT_EQ(Value(6.0).as_int(), 6);
  EXPECT_EQ(Value(-0.0).as_int(), 0);
  EXPECT_EQ(Value(-9223372036854775808.0).as_int(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(Value(9007199254740992.0).as_int(), int64_t{9007199254740992});
}

TEST(ValueTest, AsIntRejectsFractionsAndOutOfRangeFloats) {
  ConfigError e = config_error([] { Value(1.5).located(at(4, 7)).as_int(); });
  EXPECT_EQ(e.detail(), "expected an integer, got float 1.5");
  EXPECT_EQ(e.where().line, 4);
  EXPECT_EQ(e.where().column, 7);
  // 2^63 is a double but not an int64.
  EXPECT_THROW(Value(9223372036854775808.0).as_int(), ConfigError);
  EXPECT_THROW(Value(std::nan("")).as_int(), ConfigError);
  EXPECT_THROW(Value(std::numeric_limits<double>::infinity()).as_int(), ConfigError);
  EXPECT_THROW(Value("3").as_int(), ConfigError);
}

TEST(ValueTest, KindMismatchMessagesNameBothKindsAndTheValue) {
  ConfigError e = config_error([] { Value("yes").located(at(2, 9)).as_bool(); });
  EXPECT_EQ(e.detail(), "expected a bool, got string \"yes\"");
  EXPECT_EQ(std::string(e.what()), "cfg.yaml:2:9: expected a bool, got string \"yes\"");
  EXPECT_EQ(config_error([] { Value().as_string(); }).detail(), "expected a string, got null");
  EXPECT_EQ(config_error([] { Value(3).as_list(); }).detail(), "expected a list, got integer 3");
  EXPECT_EQ(config_error([] { Value::list({1}).as_map(); }).detail(),
            "expected a map, got list [1]");
  EXPECT_EQ(config_error([] { Value(true).as_double(); }).detail(),
            "expected a number, got bool true");
  Value mutable_value = "s";
  EXPECT_THROW(mutable_value.as_list(), ConfigError);
  EXPECT_THROW(mutable_value.as_map(), ConfigError);
}

TEST(ValueTest, StringLists) {
  Value v = Value::string_list({"q_proj", "k_proj"});
  EXPECT_EQ(v.as_string_list(), (std::vector<std::string>{"q_proj", "k_proj"}));
  EXPECT_TRUE(Value::list().as_string_list().empty());

  Value mixed = Value::list({"a", Value(2).located(at(3, 5))});
  ConfigError e = config_error([&] { mixed.as_string_list(); });
  EXPECT_EQ(e.detail(), "expected a string in a list of strings, got integer 2");
  EXPECT_EQ(e.where().line, 3);
  EXPECT_EQ(e.where().column, 5);
  EXPECT_EQ(config_error([] { Value("a").as_string_list(); }).detail(),
            "expected a list of strings, got string \"a\"");
}

TEST(ValueTest, FindAndContains) {
  Value m = Value::map({{"bits", 4}, {"group_size", 128}});
  ASSERT_NE(m.find("bits"), nullptr);
  EXPECT_EQ(m.find("bits")->as_int(), 4);
  EXPECT_EQ(m.find("missing"), nullptr);
  EXPECT_TRUE(m.contains("group_size"));
  EXPECT_FALSE(m.contains("Bits"));
  EXPECT_EQ(Value(3).find("bits"), nullptr);
  EXPECT_FALSE(Value::list({"bits"}).contains("bits"));

  m.find("bits")->as_int();  // the non-const overload returns a writable value
  *m.find("bits") = 8;
  EXPECT_EQ(m.at("bits").as_int(), 8);
}

TEST(ValueTest, AtOnAMissingKeyNamesTheKeyAndTheMap) {
  Value m = Value::map({{"bits", 4}}).located(at(1, 1));
  EXPECT_EQ(m.at("bits").as_int(), 4);
  ConfigError e = config_error([&] { m.at("group_size"); });
  EXPECT_NE(e.detail().find("'group_size'"), std::string::npos) << e.detail();
  EXPECT_EQ(e.where().line, 1);
  EXPECT_EQ(*e.where().file, "cfg.yaml");
  EXPECT_THROW(Value(1).at("x"), ConfigError);
}

TEST(ValueTest, SetReplacesInPlaceOrAppends) {
  Value m = Value::map({{"a", 1}, {"b", 2}, {"c", 3}});
  m.set("b", "two");
  m.set("d", 4);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m.as_map()[1].first, "b");
  EXPECT_EQ(m.as_map()[1].second.as_string(), "two");
  EXPECT_EQ(m.as_map()[3].first, "d");
  Value not_a_map = Value::list();
  EXPECT_THROW(not_a_map.set("a", 1), ConfigError);
}

TEST(ValueTest, EraseKeepsTheOrderOfTheRest) {
  Value m = Value::map({{"a", 1}, {"b", 2}, {"c", 3}});
  EXPECT_TRUE(m.erase("b"));
  EXPECT_FALSE(m.erase("b"));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.as_map()[0].first, "a");
  EXPECT_EQ(m.as_map()[1].first, "c");
  Value s = "x";
  EXPECT_FALSE(s.erase("x"));
}

TEST(ValueTest, Size) {
  EXPECT_EQ(Value::list({1, 2, 3}).size(), 3u);
  EXPECT_EQ(Value::map({{"a", 1}}).size(), 1u);
  EXPECT_EQ(Value("abcdef").size(), 0u);
  EXPECT_EQ(Value().size(), 0u);
}

TEST(ValueTest, LocationsAreKeptAndShown) {
  Value v = Value(1).located(at(12, 5));
  EXPECT_EQ(v.location().str(), "cfg.yaml:12:5");
  v.set_location(at(3, 0));
  EXPECT_EQ(v.location().str(), "cfg.yaml:3");
  EXPECT_FALSE(Value(1).location().known());
  EXPECT_EQ(Value(1).location().str(), "");
}

TEST(ValueTest, EqualityIsStructuralAndIgnoresLocations) {
  EXPECT_EQ(Value(1).located(at(1, 1)), Value(1).located(at(9, 9)));
  EXPECT_EQ(Value(), Value());
  EXPECT_EQ(Value("a"), Value(std::string("a")));
  EXPECT_NE(Value("a"), Value("b"));
  EXPECT_NE(Value(true), Value(1));
  EXPECT_NE(Value(), Value(false));
  EXPECT_NE(Value("1"), Value(1));
  EXPECT_EQ(Value::list({1, "x", Value()}), Value::list({1, "x", Value()}));
  EXPECT_NE(Value::list({1, 2}), Value::list({2, 1}));
  EXPECT_NE(Value::list({1}), Value::list({1, 1}));
  EXPECT_NE(Value::list(), Value::map());
}

TEST(ValueTest, IntAndFloatCompareNumerically) {
  EXPECT_EQ(Value(6), Value(6.0));
  EXPECT_EQ(Value(6.0), Value(6));
  EXPECT_NE(Value(6), Value(6.5));
  EXPECT_EQ(Value(0), Value(-0.0));
  // 2^53 + 1 rounds to 2^53 as a double; the comparison must not round.
  EXPECT_NE(Value(int64_t{9007199254740993}), Value(9007199254740992.0));
  EXPECT_EQ(Value(int64_t{9007199254740992}), Value(9007199254740992.0));
  EXPECT_NE(Value(std::numeric_limits<int64_t>::max()), Value(9223372036854775808.0));
}

TEST(ValueTest, NanEqualsNanStructurally) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Value(nan), Value(nan));
  EXPECT_NE(Value(nan), Value(1.0));
  EXPECT_NE(Value(1), Value(nan));
}

TEST(ValueTest, MapsCompareLikePythonDicts) {
  Value a = Value::map({{"x", 1}, {"y", Value::list({1, 2})}});
  Value b = Value::map({{"y", Value::list({1, 2})}, {"x", 1.0}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, Value::map({{"x", 1}, {"y", Value::list({1, 3})}}));
  EXPECT_NE(a, Value::map({{"x", 1}, {"z", Value::list({1, 2})}}));
  EXPECT_NE(a, Value::map({{"x", 1}}));
}

TEST(ValueTest, BriefIsCompactJson) {
  EXPECT_EQ(Value().brief(), "null");
  EXPECT_EQ(Value(true).brief(), "true");
  EXPECT_EQ(Value(-3).brief(), "-3");
  EXPECT_EQ(Value(6.0).brief(), "6.0");
  EXPECT_EQ(Value("a\"b").brief(), "\"a\\\"b\"");
  EXPECT_EQ(Value("é").brief(), "\"é\"");  // messages keep UTF-8 readable
  EXPECT_EQ(Value::map({{"bits", 4}, {"sym", Value::list({true, Value()})}}).brief(),
            "{\"bits\": 4, \"sym\": [true, null]}");
}

TEST(ValueTest, BriefShortensLongValues) {
  const std::string long_string(1000, 'x');
  const std::string b = Value(long_string).brief();
  EXPECT_LE(b.size(), 80u);
  EXPECT_EQ(b.substr(0, 3), "\"xx");
  EXPECT_EQ(b.substr(b.size() - 3), "...");

  Value::List many;
  for (int i = 0; i < 100000; ++i)
    many.emplace_back(i);
  const std::string lb = Value::list(std::move(many)).brief();
  EXPECT_LE(lb.size(), 80u);
  EXPECT_EQ(lb.substr(0, 7), "[0, 1, ");
  EXPECT_EQ(lb.substr(lb.size() - 3), "...");

  // Exactly 80 characters are not shortened.
  const std::string exact = Value(std::string(78, 'y')).brief();
  EXPECT_EQ(exact.size(), 80u);
  EXPECT_EQ(exact.back(), '"');
}

TEST(ValueTest, BriefDoesNotSplitUtf8Characters) {
  std::string euros;
  for (int i = 0; i < 100; ++i)
    euros += "\xE2\x82\xAC";
  const std::string b = Value(euros).brief();
  ASSERT_EQ(b.substr(b.size() - 3), "...");
  const std::string body = b.substr(1, b.size() - 4);  // between the quote and "..."
  EXPECT_EQ(body.size() % 3, 0u) << b;
  EXPECT_EQ(body.substr(0, 3), "\xE2\x82\xAC");
}

}  // namespace
}  // namespace qplug
