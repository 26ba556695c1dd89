// Config schemas: types, ranges, choices, aliases, defaults, and errors that carry file, line, key.
#include <gtest/gtest.h>

#include "qplug/core/config_file.hpp"
#include "qplug/sdk/config.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

ConfigSchema gptq_like() {
  ConfigSchema s("gptq_like", "test schema");
  s.add("bits", FieldType::Int, 4, "bits").one_of({2, 3, 4, 8});
  s.add("group_size", FieldType::Int, 128, "group").at_least(-1);
  s.add("damp_percent", FieldType::Float, 0.1, "damping").range(0.0, 1.0);
  s.add("desc_act", FieldType::Bool, false, "act order");
  s.add("format", FieldType::String, "gptq", "format")
      .one_of({"gptq", "gptq_v2"})
      .alias("checkpoint_format");
  s.add("version", FieldType::String, "gemm", "awq version").one_of({"gemm", "gemv"}).ignore_case();
  s.add("modules", FieldType::StringList, Value(), "modules").allow_null();
  s.add("backend", FieldType::String, "auto", "backend").loading();
  s.add_check([](const QuantConfig& c) {
    if (c.get_bool("desc_act") && c.get_int("group_size") == 0) c.fail("group_size", "zero");
  });
  return s;
}

Value yaml(const std::string& text) {
  return parse_yaml(text, "quant.yaml");
}

TEST(ConfigSchema, FillsDefaultsInSchemaOrder) {
  const QuantConfig c = gptq_like().validate(yaml("quant_method: gptq_like\nbits: 8\n"));
  EXPECT_EQ(c.quant_method(), "gptq_like");
  EXPECT_EQ(c.get_int("bits"), 8);
  EXPECT_EQ(c.get_int("group_size"), 128);
  EXPECT_DOUBLE_EQ(c.get_double("damp_percent"), 0.1);
  EXPECT_FALSE(c.get_string_list("modules").has_value());
  EXPECT_TRUE(c.was_set("bits"));
  EXPECT_FALSE(c.was_set("group_size"));
  std::vector<std::string> keys;
  for (const auto& [k, v] : c.values().as_map())
    keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"bits", "group_size", "damp_percent", "desc_act",
                                            "format", "version", "modules", "backend"}));
}

TEST(ConfigSchema, UnknownKeyNamesFileLineKeyAndSuggests) {
  try {
    gptq_like().validate(yaml("quant_method: gptq_like\nbits: 4\ngroup_sise: 64\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "group_sise");
    EXPECT_EQ(*e.where().file, "quant.yaml");
    EXPECT_EQ(e.where().line, 3);
    const std::string m = e.what();
    EXPECT_NE(m.find("quant.yaml:3:"), std::string::npos) << m;
    EXPECT_NE(m.find("did you mean 'group_size'?"), std::string::npos) << m;
  }
}

TEST(ConfigSchema, WrongTypeNamesTheKey) {
  try {
    gptq_like().validate(yaml("bits: \"four\"\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "bits");
    EXPECT_EQ(e.where().line, 1);
    EXPECT_NE(std::string(e.what()).find("expected an integer, got string \"four\""),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(gptq_like().validate(yaml("desc_act: yes please\n")), ConfigError);
  EXPECT_THROW(gptq_like().validate(yaml("modules: [a, 3]\n")), ConfigError);
  EXPECT_THROW(gptq_like().validate(yaml("bits: null\n")), ConfigError);
}

TEST(ConfigSchema, RangesAndChoices) {
  try {
    gptq_like().validate(yaml("damp_percent: 1.5\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("must be in [0, 1], got 1.5"), std::string::npos)
        << e.what();
  }
  try {
    gptq_like().validate(yaml("bits: 5\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("must be one of 2, 3, 4, 8, got 5"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(gptq_like().validate(yaml("group_size: -2\n")), ConfigError);
  EXPECT_EQ(gptq_like().validate(yaml("group_size: -1\n")).get_int("group_size"), -1);
}

TEST(ConfigSchema, NormalisesValues) {
  const QuantConfig c =
      gptq_like().validate(yaml("damp_percent: 1\nversion: GEMM\nmodules: q_proj\nbits: 4.0\n"));
  EXPECT_TRUE(c.get("damp_percent").is_float());  // written back as 1.0
  EXPECT_EQ(c.get_string("version"), "gemm");
  EXPECT_EQ(*c.get_string_list("modules"), std::vector<std::string>{"q_proj"});
  EXPECT_TRUE(c.get("bits").is_int());
}

TEST(ConfigSchema, AliasesAgreeOrConflict) {
  EXPECT_EQ(gptq_like().validate(yaml("checkpoint_format: gptq_v2\n")).get_string("format"),
            "gptq_v2");
  EXPECT_NO_THROW(gptq_like().validate(yaml("format: gptq\ncheckpoint_format: gptq\n")));
  try {
    gptq_like().validate(yaml("format: gptq\ncheckpoint_format: gptq_v2\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().line, 2);
    EXPECT_NE(std::string(e.what()).find("given twice"), std::string::npos);
  }
}

TEST(ConfigSchema, HostKeysAreAcceptedAndUnknownKeysCanBeIgnored) {
  EXPECT_NO_THROW(gptq_like().validate(yaml("quant_method: x\nplugin_dirs: [a]\n")));
  const QuantConfig c = gptq_like().validate(yaml("meta: {quantizer: [x]}\nbits: 8\n"), true);
  EXPECT_EQ(c.ignored_keys(), std::vector<std::string>{"meta"});
  EXPECT_EQ(c.get_int("bits"), 8);
}

TEST(ConfigSchema, CrossFieldChecksAndRequiredKeys) {
  EXPECT_THROW(gptq_like().validate(yaml("desc_act: true\ngroup_size: 0\n")), ConfigError);
  ConfigSchema s("needs", "");
  s.add("dataset", FieldType::Any, Value(), "calibration data").must_be_set();
  try {
    s.validate(yaml("{}\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "dataset");
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  EXPECT_THROW(s.validate(yaml("- a\n")), ConfigError);  // not a map
}

TEST(ConfigSchema, QuantMethodNames) {
  EXPECT_TRUE(is_valid_quant_method("bitsandbytes_4bit"));
  EXPECT_TRUE(is_valid_quant_method("compressed-tensors"));
  EXPECT_FALSE(is_valid_quant_method("../x"));
  EXPECT_FALSE(is_valid_quant_method("Gptq"));
  EXPECT_FALSE(is_valid_quant_method(""));
}

}  // namespace
}  // namespace qplug
