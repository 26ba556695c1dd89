// BitsAndBytesConfig's keys, defaults and rules, as transformers defines them, plus qplug's
// blocksize (bitsandbytes' own parameter, which transformers does not expose).
#pragma once

#include <string>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/dtype.hpp>

namespace qplug::bnb {

// The schema for "bitsandbytes_4bit" or "bitsandbytes_8bit" (the same keys; the dispatch key
// comes from load_in_4bit / load_in_8bit).
ConfigSchema make_schema(const std::string& quant_method);

enum class QuantType { FP4, NF4 };

// The 4-bit settings of a validated config.
struct FourBitSettings {
  QuantType quant_type = QuantType::FP4;
  bool double_quant = false;
  int64_t blocksize = 64;
  DType compute_dtype = DType::F32;
  // bnb_4bit_quant_storage: the checkpoint stores the packed codes' bytes viewed as this dtype.
  DType quant_storage = DType::U8;
};
FourBitSettings four_bit_settings(const QuantConfig& config);

// quantization_config as transformers' BitsAndBytesConfig.to_dict writes it (every key, in its
// order; config.json is then written with sorted keys).
Value serialize_config(const QuantConfig& config,
                       const std::optional<std::vector<std::string>>& skip_modules);

}  // namespace qplug::bnb
