// qplug inspect: the plan a config would carry out on a model, from config.json and safetensors
// headers alone (no weights are read).
#include <iostream>

#include "cli.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"

namespace qplug::cli {

namespace {

std::string shape_of(const TargetEntry& e, const ModuleInfo* m) {
  if (e.is_linear)
    return "[" + std::to_string(e.out_features) + ", " + std::to_string(e.in_features) + "]";
  if (m == nullptr || m->params.empty()) return "";
  std::string out = "[";
  const auto& shape = m->params.front().shape;
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

Value plan_json(const TargetPlan& plan, const ModelDescription& desc, const QuantizerHandle& q) {
  Value modules = Value::list();
  int quantized = 0, kept = 0, unsupported = 0;
  for (const auto& e : plan.entries) {
    Value m = Value::map();
    m.set("module", e.module);
    m.set("type", e.type);
    if (e.is_linear) {
      m.set("in_features", e.in_features);
      m.set("out_features", e.out_features);
    }
    m.set("decision", to_string(e.decision));
    m.set("rule", e.rule);
    m.set("bytes_before", e.bytes_before);
    m.set("bytes_after", e.bytes_after);
    modules.as_list().push_back(std::move(m));
    if (!e.is_linear) continue;
    if (e.decision == Decision::Quantize) ++quantized;
    if (e.decision == Decision::Keep) ++kept;
    if (e.decision == Decision::Unsupported) ++unsupported;
  }
  Value out = Value::map();
  out.set("model_type", desc.model_type);
  out.set("quant_method", q.quant_method());
  out.set("plugin", q.plugin());
  out.set("pre_quantized", q.pre_quantized());
  out.set("block_container", desc.block_container);
  out.set("modules", std::move(modules));
  out.set("modules_to_not_convert", Value::string_list(plan.modules_to_not_convert));
  out.set("kept_linears", Value::string_list(plan.kept_linears()));
  out.set("warnings", Value::string_list(plan.warnings));
  Value totals = Value::map();
  totals.set("linears_quantized", quantized);
  totals.set("linears_kept", kept);
  totals.set("linears_unsupported", unsupported);
  totals.set("bytes_before", plan.bytes_before());
  totals.set("bytes_after", plan.bytes_after());
  out.set("totals", std::move(totals));
  return out;
}

}  // namespace

int run_inspect(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "config", "plugin-dir"}, {"json"});
  const std::string model_dir = args.require("model");
  const Value user_config = load_config_file(args.require("config"));

  PluginHostOptions options;
  options.plugin_dirs = args.all("plugin-dir");
  for (auto& d : config_plugin_dirs(user_config))
    options.plugin_dirs.push_back(d);
  PluginHost host(options);

  const Value hf_config = read_model_config(model_dir);
  QuantizerHandle quantizer = choose_quantizer(host, hf_config, &user_config);

  ModelBuildOptions build;
  build.device = "meta";
  std::unique_ptr<Model> model = build_model(hf_config, build);
  const CheckpointFiles files = CheckpointFiles::open(model_dir, /*header_only=*/true);
  const ModelDescription desc = model->describe();
  if (!quantizer.pre_quantized()) map_checkpoint_tensors(expected_tensors(desc), desc, files);
  const TargetPlan plan = quantizer.plan(desc);
  for (const auto& warning : plan.warnings)
    print_log(LogLevel::Warning, warning);

  if (args.flag("json")) {
    print_json(std::cout, plan_json(plan, desc, quantizer));
    return kExitOk;
  }
  std::cout << "model: " << model_dir << " (" << desc.model_type << ", " << desc.num_blocks
            << " blocks in " << desc.block_container << ")\n"
            << "method: " << quantizer.quant_method() << " (plugin " << quantizer.plugin()
            << (quantizer.pre_quantized() ? ", pre-quantized checkpoint" : "") << ")\n\n";
  std::vector<std::vector<std::string>> rows{
      {"module", "type", "shape", "decision", "before", "after", "rule"}};
  int quantized = 0, kept = 0, unsupported = 0;
  for (const auto& e : plan.entries) {
    rows.push_back({e.module, e.type, shape_of(e, desc.find(e.module)), to_string(e.decision),
                    human_bytes(e.bytes_before), human_bytes(e.bytes_after), e.rule});
    if (!e.is_linear) continue;
    quantized += e.decision == Decision::Quantize;
    kept += e.decision == Decision::Keep;
    unsupported += e.decision == Decision::Unsupported;
  }
  print_table(std::cout, rows);
  const double ratio = plan.bytes_before() > 0 ? static_cast<double>(plan.bytes_after()) /
                                                     static_cast<double>(plan.bytes_before())
                                               : 1.0;
  std::cout << "\nlinears: " << quantized << " quantized, " << kept << " kept";
  if (unsupported) std::cout << ", " << unsupported << " UNSUPPORTED (quantize will refuse)";
  std::cout << "\ntotal: " << human_bytes(plan.bytes_before()) << " -> "
            << human_bytes(plan.bytes_after()) << " (" << static_cast<int>(ratio * 1000) / 10.0
            << "%)\n";
  std::string skip;
  for (const auto& s : plan.modules_to_not_convert)
    skip += (skip.empty() ? "" : ", ") + s;
  std::cout << "modules_to_not_convert: " << (skip.empty() ? "(none)" : skip) << "\n";
  return kExitOk;
}

}  // namespace qplug::cli
