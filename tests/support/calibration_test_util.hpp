// What the calibration plugins' tests share: the stories3M split into calibration text and
// held-out text, held-out perplexity, and quantizing a checkpoint through the host as
// `qplug quantize` does (loading quantizers on the fly, calibrating the rest).
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "qplug/core/calibration.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/core/evaluation.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/services.hpp"
#include "qplug/core/tokenizer.hpp"
#include "test_support.hpp"

namespace qplug::testing {

inline std::filesystem::path stories260k_dir() {
  return shared_dir() / "data" / "stories260K";
}
inline std::filesystem::path stories3m_dir() {
  return shared_dir() / "data" / "stories3M";
}

// The built-in plugins of this build tree, and nothing from the environment.
inline const PluginHost& build_tree_host() {
  static const PluginHost h([] {
    PluginHostOptions o;
    o.use_environment = false;
    return o;
  }());
  return h;
}

// stories3M was trained on the first 90% of tinystories_val.txt (up to the first blank line after
// 90% of its characters); the rest is text it never saw.
struct CorpusSplit {
  std::filesystem::path calibration, held_out;
};

inline const CorpusSplit& corpus_split() {
  static TempDir dir;
  static const CorpusSplit split = [] {
    std::ifstream in(shared_dir() / "data" / "corpus" / "tinystories_val.txt", std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    const size_t cut = text.find("\n\n", text.size() * 9 / 10);
    CorpusSplit s{dir / "calibration.txt", dir / "held_out.txt"};
    std::ofstream(s.calibration, std::ios::binary) << text.substr(0, cut);
    std::ofstream(s.held_out, std::ios::binary) << text.substr(cut);
    return s;
  }();
  return split;
}

// Perplexity of a stories3M-vocabulary model on the first 30 held-out windows of 512 tokens.
inline double held_out_perplexity(Model& model) {
  const Tokenizer tokenizer = Tokenizer::load(stories3m_dir().string());
  static const std::vector<int64_t> tokens =
      load_tokens(corpus_split().held_out.string(), &tokenizer, 512);
  PerplexityOptions options;
  options.max_windows = 30;
  return perplexity(model, tokens, options).perplexity;
}

// Loads `model` with the YAML config and, for calibration methods, quantizes it with calibration
// windows from the calibration part of the split. Warnings go to `warnings` when given.
inline LoadedModel quantize_with_config(const std::filesystem::path& model,
                                        const std::string& config_yaml,
                                        std::vector<std::string>* warnings = nullptr) {
  const Value config = parse_yaml(config_yaml, "test.yaml");
  CoreServices services(build_tree_host(), {}, [&](LogLevel level, const std::string& m) {
    if (warnings && level == LogLevel::Warning) warnings->push_back(m);
  });
  LoadOptions load;
  load.host = &build_tree_host();
  load.quant_config = &config;
  load.services = &services;
  LoadedModel loaded = load_model(model.string(), load);
  if (!loaded.quantizer) {
    QuantizerHandle handle =
        choose_quantizer(build_tree_host(), loaded.model->hf_config(), &config);
    const CalibrationData data = load_calibration_data(handle.calibration_request(), model.string(),
                                                       corpus_split().calibration.string(), 512, 1);
    loaded.plan = handle.quantize_model(*loaded.model, data, services);
    loaded.quantizer = handle;
  }
  return loaded;
}

}  // namespace qplug::testing
