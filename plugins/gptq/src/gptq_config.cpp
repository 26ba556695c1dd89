#include "gptq_config.hpp"

#include <regex>

#include <qplug/sdk/errors.hpp>

namespace qplug::gptq {

namespace {

constexpr const char* kVersion = "qplug:0.1.0";

// modules_in_block_to_quantize is a list of lists ([["self_attn.q_proj"], ["mlp.up_proj"]]);
// a flat list is read as one sub-list.
std::vector<std::vector<std::string>> module_lists(const Value& v, const QuantConfig& c) {
  std::vector<std::vector<std::string>> out;
  if (v.is_null()) return out;
  if (!v.is_list())
    c.fail("modules_in_block_to_quantize", "must be a list of lists of module names");
  bool flat = true;
  for (const auto& item : v.as_list())
    flat &= item.is_string();
  if (flat) {
    out.push_back(v.as_string_list());
    return out;
  }
  for (const auto& item : v.as_list()) {
    if (!item.is_list())
      c.fail("modules_in_block_to_quantize", "mixes names and lists; give a list of lists");
    out.push_back(item.as_string_list());
  }
  return out;
}

std::string escape_regex(const std::string& s) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, special, R"(\$&)");
}

// GPTQModel's `dynamic` rules: "-:<regex>" keeps a module out of quantization. vLLM honours them,
// so the layers qplug kept dense inside the blocks are named exactly.
Value dynamic_rules(const TargetPlan& plan) {
  Value rules = Value::map();
  for (const auto& e : plan.entries)
    if (e.is_linear && e.decision != Decision::Quantize && !plan.block_container.empty() &&
        e.module.rfind(plan.block_container + ".", 0) == 0)
      rules.set("-:^" + escape_regex(e.module) + "$", Value::map());
  return rules;
}

// The per-block suffixes that were quantized, when every block has the same ones (optimum's
// modules_in_block_to_quantize cannot say anything else).
Value uniform_modules_in_block(const QuantConfig& config, const TargetPlan& plan) {
  const Value& given = config.get("modules_in_block_to_quantize");
  if (!given.is_null()) return given;
  return Value();
}

}  // namespace

ConfigSchema make_schema() {
  ConfigSchema s("gptq", "GPTQ: second-order weight quantization from calibration data");
  s.add("bits", FieldType::Int, 4, "bits per weight").one_of({2, 3, 4, 8});
  s.add("group_size", FieldType::Int, 128, "inputs per scale/zero group; -1: one group per row")
      .at_least(-1);
  s.add("damp_percent", FieldType::Float, 0.1,
        "dampening added to the Hessian's diagonal, as a fraction of its mean")
      .range(0.0, 1.0);
  s.add("desc_act", FieldType::Bool, false,
        "act-order: quantize columns by decreasing Hessian diagonal (g_idx in the checkpoint)");
  s.add("sym", FieldType::Bool, true, "symmetric quantization (zero point fixed at the middle)");
  s.add("true_sequential", FieldType::Bool, true,
        "quantize a block's layers one group at a time, each seeing the earlier ones quantized");
  s.add("static_groups", FieldType::Bool, false,
        "compute every group's scale and zero before act-order permutes the columns");
  s.add("mse", FieldType::Bool, false, "search each group's range for the least error");
  s.add("format", FieldType::String, "gptq", "checkpoint format: gptq (v1) or gptq_v2")
      .one_of({"gptq", "gptq_v2"})
      .ignore_case()
      .alias("checkpoint_format");
  s.add("block_name_to_quantize", FieldType::String, Value(),
        "the module holding the decoder blocks (default: discovered)")
      .allow_null();
  s.add("modules_in_block_to_quantize", FieldType::Any, Value(),
        "lists of layer names inside a block to quantize, in order (others stay dense)")
      .allow_null();
  s.add("rtn", FieldType::Bool, false,
        "qplug: round-to-nearest with GPTQ's groups and layout, without calibration (a baseline "
        "to compare GPTQ with)");
  s.add("dataset", FieldType::Any, Value(), "calibration text: a file (text or .ids)").allow_null();
  s.add("nsamples", FieldType::Int, 128, "calibration samples").at_least(1);
  s.add("seqlen", FieldType::Int, 512, "tokens per calibration sample").at_least(2);
  // Keys transformers / optimum / GPTQModel write that change nothing here; accepted so their
  // configs read back.
  s.add("act_group_aware", FieldType::Bool, false, "GPTQModel's group-aware reordering (ignored)");
  s.add("backend", FieldType::String, "auto", "kernel backend (a loading attribute)")
      .allow_null()
      .loading();
  s.add("max_input_length", FieldType::Int, Value(), "exllama buffer length (a loading attribute)")
      .allow_null()
      .loading();
  for (const char* key :
       {"tokenizer", "meta", "model_seqlen", "module_name_preceding_first_block", "batch_size",
        "pad_token_id", "cache_block_outputs", "use_exllama", "exllama_config", "use_cuda_fp16",
        "disable_exllama", "lm_head", "dynamic", "pack_dtype", "method", "damp_auto_increment",
        "model_name_or_path", "model_file_base_name", "is_marlin_format"})
    s.add(key, FieldType::Any, Value(), "written by other tools; not used").allow_null();
  s.add_check([](const QuantConfig& c) {
    const int64_t gs = c.get_int("group_size");
    if (gs == 0) c.fail("group_size", "must be positive or -1");
    if (c.get_bool("static_groups") && gs <= 0)
      c.fail("static_groups", "needs a positive group_size");
    const Value& lm_head = c.get("lm_head");
    if (lm_head.is_bool() && lm_head.as_bool())
      c.fail("lm_head", "a quantized lm_head is not supported; keep it dense");
    const Value& dataset = c.get("dataset");
    if (!dataset.is_null() && !dataset.is_string())
      c.fail("dataset", "give the calibration text as a file name");
    module_lists(c.get("modules_in_block_to_quantize"), c);
  });
  return s;
}

GptqSettings settings_of(const QuantConfig& c) {
  GptqSettings s;
  s.bits = static_cast<int>(c.get_int("bits"));
  s.group_size = c.get_int("group_size");
  s.damp_percent = c.get_double("damp_percent");
  s.desc_act = c.get_bool("desc_act");
  s.sym = c.get_bool("sym");
  s.true_sequential = c.get_bool("true_sequential");
  s.static_groups = c.get_bool("static_groups");
  s.mse = c.get_bool("mse");
  s.v1 = c.get_string("format") == "gptq";
  s.rtn = c.get_bool("rtn");
  if (c.has("block_name_to_quantize"))
    s.block_name_to_quantize = c.get_string("block_name_to_quantize");
  s.modules_in_block = module_lists(c.get("modules_in_block_to_quantize"), c);
  return s;
}

Value transformers_config(const QuantConfig& c, const TargetPlan& plan) {
  const GptqSettings s = settings_of(c);
  Value out = Value::map();
  out.set("quant_method", "gptq");
  out.set("bits", s.bits);
  out.set("tokenizer", Value());
  out.set("dataset", Value());  // transformers accepts only c4/wikitext2 names or a list here
  out.set("group_size", s.group_size);
  out.set("damp_percent", s.damp_percent);
  out.set("desc_act", s.desc_act);
  out.set("act_group_aware", false);
  out.set("sym", s.sym);
  out.set("true_sequential", s.true_sequential);
  out.set("format", c.get_string("format"));
  Value meta = Value::map();
  meta.set("quantizer", Value::list({kVersion}));
  out.set("meta", meta);
  out.set("backend", "auto");
  out.set("model_seqlen", Value());
  out.set("block_name_to_quantize",
          plan.block_container.empty() ? Value() : Value(plan.block_container));
  out.set("module_name_preceding_first_block", Value());
  out.set("batch_size", 1);
  out.set("pad_token_id", Value());
  out.set("max_input_length", Value());
  out.set("cache_block_outputs", true);
  out.set("modules_in_block_to_quantize", uniform_modules_in_block(c, plan));
  out.set("checkpoint_format", c.get_string("format"));
  const Value dynamic = dynamic_rules(plan);
  if (dynamic.size() > 0) out.set("dynamic", dynamic);
  return out;
}

Value gptqmodel_config(const QuantConfig& c, const TargetPlan& plan) {
  const GptqSettings s = settings_of(c);
  Value out = Value::map();
  out.set("bits", s.bits);
  out.set("dynamic", dynamic_rules(plan));
  out.set("group_size", s.group_size);
  out.set("desc_act", s.desc_act);
  out.set("sym", s.sym);
  out.set("lm_head", false);
  out.set("quant_method", "gptq");
  out.set("checkpoint_format", c.get_string("format"));
  out.set("format", c.get_string("format"));
  out.set("pack_dtype", "int32");
  Value meta = Value::map();
  meta.set("quantizer", Value::list({kVersion}));
  meta.set("damp_percent", s.damp_percent);
  meta.set("damp_auto_increment", 0.0025);
  meta.set("static_groups", s.static_groups);
  meta.set("true_sequential", s.true_sequential);
  meta.set("mse", s.mse);
  meta.set("act_group_aware", false);
  out.set("meta", meta);
  return out;
}

}  // namespace qplug::gptq
