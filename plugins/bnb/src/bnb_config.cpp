#include "bnb_config.hpp"

#include <qplug/sdk/errors.hpp>

namespace qplug::bnb {

ConfigSchema make_schema(const std::string& quant_method) {
  ConfigSchema s(quant_method, "bitsandbytes: NF4/FP4 4-bit or LLM.int8 8-bit, no calibration");
  s.add("load_in_4bit", FieldType::Bool, false, "quantize linear layers to 4-bit (NF4/FP4)");
  s.add("load_in_8bit", FieldType::Bool, false, "quantize linear layers to LLM.int8");
  // transformers' to_dict also writes these private mirrors; accept them when reading one back.
  s.add("_load_in_4bit", FieldType::Bool, false, "mirror of load_in_4bit written by transformers");
  s.add("_load_in_8bit", FieldType::Bool, false, "mirror of load_in_8bit written by transformers");
  s.add("llm_int8_threshold", FieldType::Float, 6.0,
        "outlier threshold of LLM.int8 inference; 0 disables the outlier decomposition")
      .at_least(0.0);
  s.add("llm_int8_skip_modules", FieldType::StringList, Value(),
        "modules to keep in full precision (transformers' rule; null = the default skips)")
      .allow_null();
  s.add("llm_int8_enable_fp32_cpu_offload", FieldType::Bool, false,
        "keep offloaded modules in fp32 (accepted for compatibility; qplug has no device map)");
  s.add("llm_int8_has_fp16_weight", FieldType::Bool, false,
        "keep fp16 weights next to int8 (for training); qplug supports only false")
      .one_of({false});
  s.add("bnb_4bit_compute_dtype", FieldType::String, "float32",
        "dtype of 4-bit matmuls: float32, float16 or bfloat16")
      .one_of({"float32", "float16", "bfloat16"})
      .allow_null();
  s.add("bnb_4bit_quant_type", FieldType::String, "fp4", "4-bit code: fp4 or nf4")
      .one_of({"fp4", "nf4"});
  s.add("bnb_4bit_use_double_quant", FieldType::Bool, false,
        "quantize the absmax scales again (8-bit, blocks of 256)");
  s.add("bnb_4bit_quant_storage", FieldType::String, "uint8",
        "dtype the packed 4-bit codes are stored as: their bytes viewed as it (bfloat16 for FSDP "
        "QLoRA); the codes are the same")
      .one_of({"uint8", "int8", "float16", "bfloat16", "float32", "float64"});
  s.add("blocksize", FieldType::Int, 64,
        "4-bit absmax block size (bitsandbytes' parameter; transformers always uses 64)")
      .one_of({32, 64, 128, 256, 512, 1024, 2048, 4096});
  s.add_check([](const QuantConfig& c) {
    for (const char* bits : {"4bit", "8bit"}) {
      const std::string key = std::string("load_in_") + bits;
      const std::string mirror = "_" + key;
      if (c.was_set(mirror) && c.was_set(key) && c.get_bool(mirror) != c.get_bool(key))
        c.fail(mirror, "disagrees with " + key);
    }
  });
  // The dispatch key decided 4-bit or 8-bit; the flags and their mirrors follow it, so that a
  // config written back by transformers' rules reads as the same config.
  const bool four = quant_method == "bitsandbytes_4bit";
  s.add_normalizer([four](QuantConfig& c) {
    if (c.get_bool(four ? "load_in_8bit" : "load_in_4bit"))
      c.fail(four ? "load_in_8bit" : "load_in_4bit",
             "load_in_4bit and load_in_8bit cannot both be true; pick one");
    c.set("load_in_4bit", four);
    c.set("_load_in_4bit", four);
    c.set("load_in_8bit", !four);
    c.set("_load_in_8bit", !four);
  });
  return s;
}

FourBitSettings four_bit_settings(const QuantConfig& config) {
  FourBitSettings s;
  s.quant_type =
      config.get_string("bnb_4bit_quant_type") == "nf4" ? QuantType::NF4 : QuantType::FP4;
  s.double_quant = config.get_bool("bnb_4bit_use_double_quant");
  s.blocksize = config.get_int("blocksize");
  if (config.has("bnb_4bit_compute_dtype"))
    s.compute_dtype = *dtype_from_torch_name(config.get_string("bnb_4bit_compute_dtype"));
  s.quant_storage = *dtype_from_torch_name(config.get_string("bnb_4bit_quant_storage"));
  return s;
}

Value serialize_config(const QuantConfig& config,
                       const std::optional<std::vector<std::string>>& skip_modules) {
  const bool four = config.quant_method() == "bitsandbytes_4bit";
  Value out = Value::map();
  out.set("quant_method", "bitsandbytes");
  out.set("_load_in_4bit", four);
  out.set("_load_in_8bit", !four);
  out.set("llm_int8_threshold", config.get_double("llm_int8_threshold"));
  out.set("llm_int8_skip_modules", skip_modules ? Value::string_list(*skip_modules) : Value());
  out.set("llm_int8_enable_fp32_cpu_offload", config.get_bool("llm_int8_enable_fp32_cpu_offload"));
  out.set("llm_int8_has_fp16_weight", config.get_bool("llm_int8_has_fp16_weight"));
  out.set("bnb_4bit_quant_type", config.get_string("bnb_4bit_quant_type"));
  out.set("bnb_4bit_use_double_quant", config.get_bool("bnb_4bit_use_double_quant"));
  out.set("bnb_4bit_compute_dtype", config.has("bnb_4bit_compute_dtype")
                                        ? config.get_string("bnb_4bit_compute_dtype")
                                        : std::string("float32"));
  out.set("bnb_4bit_quant_storage", config.get_string("bnb_4bit_quant_storage"));
  out.set("load_in_4bit", four);
  out.set("load_in_8bit", !four);
  return out;
}

}  // namespace qplug::bnb
