// What a quantizer asks of core targeting, and the plan core answers with: one decision per linear
// layer and the rule that made it. The rules and their precedence are documented in
// docs/targeting.md; the implementation is core's (plugins never re-implement it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qplug {

struct TargetingRequest {
  // The user's skip rules (llm_int8_skip_modules, modules_to_not_convert, ...). nullopt when the
  // user gave none: then the default skips apply, as in transformers.
  std::optional<std::vector<std::string>> skip_modules;
  std::string skip_key;  // the config key they came from, for messages
  // How to keep an unsupported layer dense, when "add it to <skip_key>" is not the way (GPTQ).
  std::string skip_hint;
  bool add_default_skips = false;  // defaults even when the user gave a list
  // Only linears inside the block container are candidates (GPTQ, AWQ); lm_head and embeddings
  // are then outside by construction.
  bool only_in_blocks = false;
  std::optional<std::string> block_container;  // block_name_to_quantize; nullopt = discover
  // GPTQ's modules_in_block_to_quantize: a linear is a candidate only if its name ends with one of
  // these (flattened from the nested lists).
  std::optional<std::vector<std::string>> modules_in_block;
};

enum class Decision {
  Quantize,
  Keep,         // stays in full precision, by the rule named in TargetEntry::rule
  Unsupported,  // targeted, but the method cannot convert this shape: an error until skipped
};
const char* to_string(Decision decision);

struct TargetEntry {
  std::string module;
  std::string type;
  bool is_linear = false;
  int64_t in_features = 0;
  int64_t out_features = 0;
  Decision decision = Decision::Keep;
  // What decided, e.g. "user skip 'lm_head' from llm_int8_skip_modules (exact name)"; the full
  // list of forms is in docs/targeting.md.
  std::string rule;
  int64_t bytes_before = 0;  // as stored: a tied parameter costs nothing (its source is stored)
  int64_t bytes_after = 0;   // == bytes_before unless quantized
};

struct TargetPlan {
  std::string quant_method;
  // One per module that holds tensors, in definition order; modules that are not linears are
  // Keep with rule "not a linear layer", so the totals cover the whole model.
  std::vector<TargetEntry> entries;
  // get_modules_to_not_convert's merged list (defaults, user skips, keep_in_fp32), stable order.
  std::vector<std::string> modules_to_not_convert;
  std::string block_container;
  // Things worth telling the user that do not stop quantization (a skip rule that matches nothing).
  std::vector<std::string> warnings;

  const TargetEntry* find(const std::string& module) const;
  bool quantizes(const std::string& module) const;
  std::vector<std::string> quantized_modules() const;
  // Every linear that stays in full precision, by full name: what gets written to the checkpoint's
  // skip list so that any loader makes exactly these decisions.
  std::vector<std::string> kept_linears() const;
  std::vector<const TargetEntry*> unsupported() const;
  int64_t bytes_before() const;
  int64_t bytes_after() const;
};

}  // namespace qplug
