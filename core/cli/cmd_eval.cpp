// qplug eval: perplexity of a checkpoint (quantized or not) on a text or token-id file.
// qplug generate: greedy continuation of a prompt, for a person to see that a model works.
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "progress.hpp"
#include "qplug/core/config_file.hpp"
#include "qplug/core/evaluation.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/services.hpp"
#include "qplug/core/tokenizer.hpp"

namespace qplug::cli {

namespace {

std::optional<Tokenizer> maybe_tokenizer(const std::string& folder) {
  if (!std::filesystem::exists(std::filesystem::path(folder) / "tokenizer.model")) return {};
  return Tokenizer::load(folder);
}

int64_t config_int(const Model& model, const char* key, int64_t fallback) {
  const Value* v = model.hf_config().find(key);
  return v != nullptr && v->is_int() ? v->as_int() : fallback;
}

}  // namespace

int run_eval(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "data", "seq-len", "windows", "batch-size", "plugin-dir"}, {"json"});
  const std::string folder = args.require("model");
  const std::string data = args.require("data");
  PluginHostOptions host_options;
  host_options.plugin_dirs = args.all("plugin-dir");
  PluginHost host(host_options);
  Progress bar;
  CoreServices services(
      host,
      [&](const std::string& task, int64_t done, int64_t total) { bar.update(task, done, total); },
      print_log);
  LoadOptions load;
  load.host = &host;
  load.services = &services;
  LoadedModel loaded = load_model(folder, load);
  Model& model = *loaded.model;

  const std::optional<Tokenizer> tokenizer = maybe_tokenizer(folder);
  const int64_t vocab = config_int(model, "vocab_size", 0);
  const std::vector<int64_t> tokens = load_tokens(data, tokenizer ? &*tokenizer : nullptr, vocab);
  PerplexityOptions options;
  options.seq_len = args.get_int("seq-len", 512);
  options.max_windows = args.get_int("windows", 0);
  options.batch_size = args.get_int("batch-size", 4);
  options.bos_id = tokenizer ? tokenizer->bos_id() : config_int(model, "bos_token_id", 1);
  options.progress = [&](int64_t done, int64_t total) { bar.update("perplexity", done, total); };
  const auto started = std::chrono::steady_clock::now();
  const PerplexityResult r = perplexity(model, tokens, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  bar.finish();

  if (args.flag("json")) {
    Value out = Value::map();
    out.set("model", folder);
    out.set("data", data);
    out.set("quant_method", model.is_quantized() ? Value(model.quantization_method()) : Value());
    out.set("perplexity", r.perplexity);
    out.set("mean_nll", r.mean_nll);
    out.set("windows", r.windows);
    out.set("seq_len", options.seq_len);
    out.set("predictions", r.predictions);
    out.set("seconds", seconds);
    print_json(std::cout, out);
  } else {
    std::printf("perplexity %.4f over %lld windows of %lld tokens (%lld predictions, %.1f s)\n",
                r.perplexity, static_cast<long long>(r.windows),
                static_cast<long long>(options.seq_len), static_cast<long long>(r.predictions),
                seconds);
  }
  return kExitOk;
}

int run_generate(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "prompt", "max-new-tokens", "plugin-dir"}, {});
  const std::string folder = args.require("model");
  PluginHostOptions host_options;
  host_options.plugin_dirs = args.all("plugin-dir");
  PluginHost host(host_options);
  LoadOptions load;
  load.host = &host;
  LoadedModel loaded = load_model(folder, load);
  const Tokenizer tokenizer = Tokenizer::load(folder);
  const std::string prompt = args.require("prompt");
  std::vector<int64_t> ids{tokenizer.bos_id()};
  for (int64_t id : tokenizer.encode(prompt))
    ids.push_back(id);
  const auto generated = generate_greedy(*loaded.model, ids, args.get_int("max-new-tokens", 128),
                                         {tokenizer.eos_id(), tokenizer.bos_id()});
  std::vector<int64_t> all(ids.begin() + 1, ids.end());
  all.insert(all.end(), generated.begin(), generated.end());
  std::cout << tokenizer.decode(all) << "\n";
  return kExitOk;
}

}  // namespace qplug::cli
