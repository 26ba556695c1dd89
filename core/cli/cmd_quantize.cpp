// qplug quantize: load a checkpoint, quantize it with the method the config selects, save it.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "progress.hpp"
#include "qplug/core/calibration.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/safetensors.hpp"
#include "qplug/core/services.hpp"

namespace qplug::cli {

namespace {

struct Summary {
  int quantized = 0;
  int kept = 0;
  int64_t linear_bytes_before = 0;
  int64_t linear_bytes_after = 0;
};

Summary summarise(const TargetPlan& plan) {
  Summary s;
  for (const auto& e : plan.entries) {
    if (!e.is_linear) continue;
    (e.decision == Decision::Quantize ? s.quantized : s.kept) += 1;
    s.linear_bytes_before += e.bytes_before;
    s.linear_bytes_after += e.bytes_after;
  }
  return s;
}

uint64_t folder_weight_bytes(const std::string& folder) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    if (entry.path().extension() == ".safetensors") total += entry.file_size();
  return total;
}

}  // namespace

int run_quantize(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "config", "out", "calibration", "max-shard-size", "plugin-dir"},
            {"overwrite", "json"});
  const std::string folder = args.require("model");
  const std::string out = args.require("out");
  const Value config = load_config_file(args.require("config"));
  if (std::filesystem::exists(out) && !args.flag("overwrite"))
    throw CheckpointError(out, "", "already exists; pass --overwrite to replace it");

  PluginHostOptions host_options;
  host_options.plugin_dirs = args.all("plugin-dir");
  for (auto& d : config_plugin_dirs(config))
    host_options.plugin_dirs.push_back(d);
  PluginHost host(host_options);
  Progress bar;
  CoreServices services(
      host,
      [&](const std::string& task, int64_t done, int64_t total) { bar.update(task, done, total); },
      print_log);

  const Value hf_config = read_model_config(folder);
  if (is_pre_quantized(hf_config))
    throw ConfigError(
        "the model in " + folder + " is already quantized; quantize an unquantized checkpoint",
        hf_config.find("quantization_config")->location(), "quantization_config");

  const auto started = std::chrono::steady_clock::now();
  LoadOptions load;
  load.host = &host;
  load.quant_config = &config;
  load.services = &services;
  LoadedModel loaded = load_model(folder, load);
  if (!loaded.quantizer) {
    // A calibration method: the model loaded dense and is quantized now, block by block.
    QuantizerHandle handle = choose_quantizer(host, hf_config, &config);
    const Value* vocab = hf_config.find("vocab_size");
    const Value* bos = hf_config.find("bos_token_id");
    const CalibrationData data = load_calibration_data(
        handle.calibration_request(), folder, args.get("calibration"),
        vocab && vocab->is_int() ? vocab->as_int() : 0, bos && bos->is_int() ? bos->as_int() : 1);
    loaded.plan = handle.quantize_model(*loaded.model, data, services);
    loaded.quantizer = handle;
  }
  const QuantizerHandle& quantizer = *loaded.quantizer;
  if (!quantizer.is_serializable())
    throw UnsupportedError("quant_method '" + quantizer.quant_method() +
                           "' cannot be saved (its quantizer is not serializable)");
  SaveOptions save;
  save.overwrite = args.flag("overwrite");
  save.copy_files_from = folder;
  save.extra_files = quantizer.extra_files(loaded.plan);
  if (auto size = args.get("max-shard-size")) save.max_shard_bytes = parse_size(*size);
  save_model(*loaded.model, out, save);
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const Summary s = summarise(loaded.plan);
  const uint64_t written = folder_weight_bytes(out);
  const uint64_t original = folder_weight_bytes(folder);
  if (args.flag("json")) {
    Value v = Value::map();
    v.set("model", folder);
    v.set("out", out);
    v.set("quant_method", quantizer.quant_method());
    v.set("plugin", quantizer.plugin());
    v.set("linears_quantized", s.quantized);
    v.set("linears_kept", s.kept);
    v.set("kept", Value::string_list(loaded.plan.kept_linears()));
    v.set("linear_bytes_before", s.linear_bytes_before);
    v.set("linear_bytes_after", s.linear_bytes_after);
    v.set("checkpoint_bytes_before", original);
    v.set("checkpoint_bytes_after", written);
    v.set("seconds", seconds);
    print_json(std::cout, v);
  } else {
    std::cout << "quantized " << folder << " with " << quantizer.quant_method() << " (plugin "
              << quantizer.plugin() << ") -> " << out << "\n"
              << "  linears: " << s.quantized << " quantized, " << s.kept
              << " kept in full precision\n"
              << "  linear weights: " << human_bytes(s.linear_bytes_before) << " -> "
              << human_bytes(s.linear_bytes_after) << "\n"
              << "  checkpoint: " << human_bytes(static_cast<int64_t>(original)) << " -> "
              << human_bytes(static_cast<int64_t>(written)) << "\n";
    std::printf("  time: %.2f s\n", seconds);
  }
  return kExitOk;
}

}  // namespace qplug::cli
