// Merging a checkpoint's quantization_config with a user's: loading attributes win, anything else
// must agree.
#include <gtest/gtest.h>

#include "qplug/core/config_file.hpp"
#include "qplug/core/config_merge.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {
namespace {

ConfigSchema schema() {
  ConfigSchema s("gptq", "");
  s.add("bits", FieldType::Int, 4, "bits");
  s.add("group_size", FieldType::Int, 128, "group");
  s.add("backend", FieldType::String, "auto", "kernel backend").loading();
  return s;
}

QuantConfig from(const std::string& text, const std::string& file) {
  return schema().validate(parse_json(text, file));
}

TEST(MergeQuantizationConfigs, WithoutUserConfigTheCheckpointsIsUsed) {
  const QuantConfig ckpt = from(R"({"quant_method": "gptq", "bits": 8})", "config.json");
  EXPECT_EQ(merge_quantization_configs(schema(), ckpt, nullptr).get_int("bits"), 8);
}

TEST(MergeQuantizationConfigs, LoadingAttributesComeFromTheUser) {
  const QuantConfig ckpt = from(R"({"quant_method": "gptq", "backend": "exllama"})", "config.json");
  const QuantConfig user = from(R"({"quant_method": "gptq", "backend": "torch"})", "user.json");
  const QuantConfig merged = merge_quantization_configs(schema(), ckpt, &user);
  EXPECT_EQ(merged.get_string("backend"), "torch");
}

TEST(MergeQuantizationConfigs, EqualValuesAndUnsetKeysAreFine) {
  const QuantConfig ckpt = from(R"({"quant_method": "gptq", "bits": 8, "group_size": 32})", "c");
  const QuantConfig user = from(R"({"quant_method": "gptq", "bits": 8})", "u");
  const QuantConfig merged = merge_quantization_configs(schema(), ckpt, &user);
  EXPECT_EQ(merged.get_int("group_size"), 32);  // the checkpoint's, although the user's default
                                                // would have been 128
}

TEST(MergeQuantizationConfigs, AConflictNamesBothPlaces) {
  const QuantConfig ckpt = from("{\"quant_method\": \"gptq\",\n \"bits\": 4}", "config.json");
  const QuantConfig user = from("{\"quant_method\": \"gptq\", \"bits\": 8}", "user.json");
  try {
    merge_quantization_configs(schema(), ckpt, &user);
    FAIL();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.key(), "bits");
    EXPECT_NE(m.find("user.json:1:"), std::string::npos) << m;
    EXPECT_NE(m.find("config.json:2:"), std::string::npos) << m;
    EXPECT_NE(m.find("is 8 here but 4 in the checkpoint"), std::string::npos) << m;
  }
}

TEST(MergeQuantizationConfigs, DifferentMethodsAreAnError) {
  ConfigSchema other("awq", "");
  other.add("bits", FieldType::Int, 4, "bits");
  const QuantConfig ckpt = from(R"({"quant_method": "gptq"})", "config.json");
  const QuantConfig user = other.validate(parse_json(R"({"quant_method": "awq"})", "user.json"));
  EXPECT_THROW(merge_quantization_configs(schema(), ckpt, &user), ConfigError);
}

}  // namespace
}  // namespace qplug
