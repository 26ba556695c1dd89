#include "awq_config.hpp"

#include <algorithm>
#include <vector>

namespace qplug::awq {

namespace {

// AutoAWQ's other layouts: real, but their tensors are not what qplug's kernels hold.
const std::vector<std::string> kUnsupportedVersions = {"gemv_fast", "marlin", "exllama", "ipex"};

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

void check_version(const QuantConfig& c) {
  const std::string v = c.get_string("version");
  if (v == "gemm" || v == "gemv") return;
  if (contains(kUnsupportedVersions, v))
    c.fail("version", "AutoAWQ's '" + v +
                          "' layout is not supported; qplug reads and writes the gemm and gemv "
                          "layouts (set version: gemm)");
  c.fail("version", "unknown AWQ version '" + v +
                        "' (also read from 'format'); accepted: gemm, gemv (any case)");
}

// The linears kept dense that a loader would convert on its own: transformers' AWQ loader
// converts every linear except its default skips (lm_head, tied weights) and the listed ones.
Value kept_dense(const TargetPlan& plan) {
  std::vector<std::string> names;
  for (const auto& e : plan.entries)
    if (e.is_linear && e.decision != Decision::Quantize && e.rule.rfind("default skip", 0) != 0)
      names.push_back(e.module);
  return names.empty() ? Value() : Value::string_list(names);
}

}  // namespace

ConfigSchema make_schema() {
  ConfigSchema s("awq", "AWQ: activation-aware 4-bit weight quantization from calibration data");
  // AutoAWQ's own dict spells bits and group_size as w_bit and q_group_size.
  s.add("bits", FieldType::Int, 4, "bits per weight (AWQ packs only 4)").alias("w_bit");
  s.add("group_size", FieldType::Int, 128, "inputs per scale/zero group; -1: one group per row")
      .at_least(-1)
      .alias("q_group_size");
  s.add("zero_point", FieldType::Bool, true, "asymmetric quantization with a zero point per group");
  s.add("version", FieldType::String, "gemm", "checkpoint layout: gemm or gemv")
      .ignore_case()
      .alias("format");
  s.add("modules_to_not_convert", FieldType::StringList, Value(),
        "modules to keep in full precision (transformers' rule; the default skips always apply)")
      .allow_null();
  s.add("duo_scaling", FieldType::Bool, true,
        "search scales from activation and weight means (AutoAWQ); false: activations only "
        "(llm-awq)");
  s.add("apply_clip", FieldType::Bool, true, "search a clipping range per group after scaling");
  s.add("n_grid", FieldType::Int, 20, "grid points of the scale search").at_least(1);
  s.add("max_calib_samples", FieldType::Int, 128, "calibration samples").at_least(1);
  s.add("max_calib_seq_len", FieldType::Int, 512, "tokens per calibration sample").at_least(2);
  s.add("dataset", FieldType::String, Value(), "calibration text: a file (text or .ids)")
      .allow_null();
  s.add("rtn", FieldType::Bool, false,
        "qplug: round-to-nearest with AWQ's groups and layout, without calibration (a baseline "
        "to compare AWQ with)");
  // Loading options of transformers v4's AwqConfig (fused modules, exllama, the kernel backend):
  // they say how to run a checkpoint, not what it holds, so a user may set them when loading.
  s.add("backend", FieldType::String, Value(), "kernel backend (a loading attribute; ignored)")
      .allow_null()
      .loading();
  for (const char* key : {"do_fuse", "fuse_max_seq_len", "modules_to_fuse", "exllama_config"})
    s.add(key, FieldType::Any, Value(), "transformers v4 loading option (ignored)")
        .allow_null()
        .loading();
  s.add_check([](const QuantConfig& c) {
    if (c.get_int("bits") != 4)
      c.fail("bits", "AWQ packs only 4-bit weights (AutoAWQ's w_bit 4); got " +
                         std::to_string(c.get_int("bits")));
    if (c.get_int("group_size") == 0) c.fail("group_size", "must be positive or -1");
    if (!c.get_bool("zero_point"))
      c.fail("zero_point",
             "must be true: AutoAWQ's gemm and gemv layouts store a zero point per group "
             "(qzeros), so symmetric AWQ cannot be saved in them");
    check_version(c);
  });
  return s;
}

const char* to_string(AwqVersion version) {
  return version == AwqVersion::Gemv ? "gemv" : "gemm";
}

AwqSettings settings_of(const QuantConfig& c) {
  AwqSettings s;
  s.bits = static_cast<int>(c.get_int("bits"));
  s.group_size = c.get_int("group_size");
  s.zero_point = c.get_bool("zero_point");
  s.version = c.get_string("version") == "gemv" ? AwqVersion::Gemv : AwqVersion::Gemm;
  s.duo_scaling = c.get_bool("duo_scaling");
  s.apply_clip = c.get_bool("apply_clip");
  s.n_grid = static_cast<int>(c.get_int("n_grid"));
  s.max_calib_samples = c.get_int("max_calib_samples");
  s.max_calib_seq_len = c.get_int("max_calib_seq_len");
  if (c.has("dataset")) s.dataset = c.get_string("dataset");
  s.rtn = c.get_bool("rtn");
  return s;
}

Value transformers_config(const QuantConfig& c, const TargetPlan& plan) {
  const AwqSettings s = settings_of(c);
  Value out = Value::map();
  out.set("quant_method", "awq");
  out.set("zero_point", s.zero_point);
  out.set("group_size", s.group_size);
  out.set("bits", s.bits);
  out.set("version", to_string(s.version));
  // Without a plan (nothing decided yet) the user's own list is all there is to say.
  out.set("modules_to_not_convert",
          plan.entries.empty() ? c.get("modules_to_not_convert") : kept_dense(plan));
  return out;
}

}  // namespace qplug::awq
