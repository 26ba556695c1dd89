// qplug demo: the main job in one command. Quantizes a model with every method whose plugin is
// present, saves each result, reloads it, evaluates it, and prints one table.
//
// Without --model it builds a small deterministic Llama (random weights, every projection
// packable by GPTQ/AWQ) in a temporary folder and reports the output error against the
// full-precision logits; with --model and --data it reports perplexity.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "cli.hpp"
#include "progress.hpp"
#include "qplug/core/calibration.hpp"
#include "qplug/core/evaluation.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/services.hpp"
#include "qplug/core/tokenizer.hpp"

namespace qplug::cli {

namespace fs = std::filesystem;

namespace {

// A config to try for a method: the showcase variants of the methods we know, schema defaults
// for any other (third-party) method.
struct DemoConfig {
  std::string label;
  Value config;
};

std::vector<DemoConfig> demo_configs(const std::string& method) {
  auto make = [&](std::initializer_list<std::pair<const char*, Value>> keys) {
    Value v = Value::map();
    v.set("quant_method", method);
    for (const auto& [k, val] : keys)
      v.set(k, val);
    return v;
  };
  if (method == "bitsandbytes_4bit")
    return {{"nf4 + double quant", make({{"load_in_4bit", true},
                                         {"bnb_4bit_quant_type", "nf4"},
                                         {"bnb_4bit_use_double_quant", true}})},
            {"fp4", make({{"load_in_4bit", true}, {"bnb_4bit_quant_type", "fp4"}})}};
  if (method == "bitsandbytes_8bit") return {{"LLM.int8", make({{"load_in_8bit", true}})}};
  return {{"defaults", make({})}};
}

Value synthetic_llama_config() {
  Value c = Value::map();
  c.set("architectures", Value::list({"LlamaForCausalLM"}));
  c.set("model_type", "llama");
  c.set("vocab_size", 512);
  c.set("hidden_size", 256);
  c.set("intermediate_size", 768);
  c.set("num_hidden_layers", 4);
  c.set("num_attention_heads", 4);
  c.set("num_key_value_heads", 2);
  c.set("max_position_embeddings", 512);
  c.set("rms_norm_eps", 1e-5);
  c.set("rope_theta", 10000.0);
  c.set("tie_word_embeddings", false);
  c.set("bos_token_id", 1);
  c.set("eos_token_id", 2);
  c.set("torch_dtype", "float32");
  return c;
}

struct Row {
  std::string method;
  std::string variant;
  double bits_per_weight = 0;
  uint64_t checkpoint_bytes = 0;
  double seconds = 0;
  double metric = 0;  // perplexity or relative logit error
  double top1 = 0;    // top-1 agreement with full precision
  bool reload_identical = false;
  std::string error;
};

uint64_t weight_bytes(const fs::path& folder) {
  uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.path().extension() == ".safetensors") total += entry.file_size();
  return total;
}

double bits_per_weight(const TargetPlan& plan) {
  int64_t weights = 0, bytes = 0;
  for (const auto& e : plan.entries)
    if (e.is_linear && e.decision == Decision::Quantize) {
      weights += e.in_features * e.out_features;
      bytes += e.bytes_after;
    }
  return weights ? 8.0 * static_cast<double>(bytes) / static_cast<double>(weights) : 0.0;
}

}  // namespace

int run_demo(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "data", "windows", "workdir", "plugin-dir"}, {"json", "keep"});
  c10::InferenceMode inference;
  fs::path workdir = args.get("workdir").value_or("");
  const bool own_workdir = workdir.empty();
  if (own_workdir) {
    std::string pattern = (fs::temp_directory_path() / "qplug-demo-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw CheckpointError(pattern, "", "cannot create");
    workdir = pattern;
  }
  PluginHostOptions host_options;
  host_options.plugin_dirs = args.all("plugin-dir");
  PluginHost host(host_options);
  Progress bar;
  CoreServices services(
      host,
      [&](const std::string& task, int64_t done, int64_t total) { bar.update(task, done, total); },
      print_log);

  // The full-precision model.
  std::string model_dir = args.get("model").value_or("");
  if (model_dir.empty()) {
    model_dir = (workdir / "synthetic-llama").string();
    ModelBuildOptions build;
    std::unique_ptr<Model> synthetic = build_model(synthetic_llama_config(), build);
    init_random_weights(*synthetic, /*seed=*/1234);
    SaveOptions save;
    save.overwrite = true;
    save_model(*synthetic, model_dir, save);
    std::cout << "built a synthetic Llama (hidden 256, MLP 768, 4 layers, vocab 512) in "
              << model_dir << "\n";
  }
  LoadOptions plain;
  plain.host = &host;
  LoadedModel reference = load_model(model_dir, plain);

  // What to evaluate on: perplexity over real text, or a fixed batch of random tokens.
  const std::optional<std::string> data = args.get("data");
  std::vector<int64_t> tokens;
  PerplexityOptions ppl;
  at::Tensor probe;
  if (data) {
    std::optional<Tokenizer> tokenizer;
    if (fs::exists(fs::path(model_dir) / "tokenizer.model")) tokenizer = Tokenizer::load(model_dir);
    const Value* vocab = reference.model->hf_config().find("vocab_size");
    tokens = load_tokens(*data, tokenizer ? &*tokenizer : nullptr, vocab ? vocab->as_int() : 0);
    ppl.max_windows = args.get_int("windows", 20);
    if (tokenizer) ppl.bos_id = tokenizer->bos_id();
  } else {
    at::Generator gen = at::detail::createCPUGenerator(99);
    const int64_t vocab = reference.model->hf_config().at("vocab_size").as_int();
    probe = at::randint(vocab, {4, 128}, gen, at::TensorOptions().dtype(at::kLong));
  }
  auto evaluate = [&](Model& model, at::Tensor* logits_out) {
    if (data) return perplexity(model, tokens, ppl).perplexity;
    *logits_out = model.forward(probe);
    return 0.0;
  };
  at::Tensor reference_logits;
  const double reference_metric = evaluate(*reference.model, &reference_logits);

  // Calibration windows for methods that need them: the evaluation text when there is one
  // (then from its beginning, as windows of 128), otherwise random tokens.
  const int64_t vocab = reference.model->hf_config().at("vocab_size").as_int();
  std::vector<int64_t> calibration_tokens = tokens;
  if (calibration_tokens.empty()) {
    at::Generator gen = at::detail::createCPUGenerator(7);
    const at::Tensor random =
        at::randint(vocab, {32 * 128}, gen, at::TensorOptions().dtype(at::kLong));
    calibration_tokens.assign(random.data_ptr<int64_t>(),
                              random.data_ptr<int64_t>() + random.numel());
  }
  const CalibrationData calibration =
      make_calibration_data(calibration_tokens, 32, 128, ppl.bos_id);

  std::vector<Row> rows;
  for (const std::string& method : host.quant_methods()) {
    for (const DemoConfig& demo : demo_configs(method)) {
      Row row;
      row.method = method;
      row.variant = demo.label;
      const fs::path out = workdir / (method + "-" + std::to_string(rows.size()));
      try {
        const auto started = std::chrono::steady_clock::now();
        LoadOptions load;
        load.host = &host;
        load.quant_config = &demo.config;
        load.services = &services;
        LoadedModel quantized = load_model(model_dir, load);
        if (!quantized.quantizer) {
          // A calibration method: a small calibration set keeps the demo quick.
          QuantizerHandle handle =
              choose_quantizer(host, reference.model->hf_config(), &demo.config);
          quantized.plan = handle.quantize_model(*quantized.model, calibration, services);
          quantized.quantizer = handle;
        }
        SaveOptions save;
        save.overwrite = true;
        save.copy_files_from = model_dir;
        save.extra_files = quantized.quantizer->extra_files(quantized.plan);
        save_model(*quantized.model, out.string(), save);
        row.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        row.bits_per_weight = bits_per_weight(quantized.plan);
        row.checkpoint_bytes = weight_bytes(out);

        at::Tensor in_memory, reloaded_logits;
        const double in_memory_metric = evaluate(*quantized.model, &in_memory);
        LoadedModel reloaded = load_model(out.string(), plain);
        row.metric = evaluate(*reloaded.model, &reloaded_logits);
        if (data) {
          row.reload_identical = row.metric == in_memory_metric;
        } else {
          row.reload_identical = at::equal(in_memory, reloaded_logits);
          row.metric = ((reloaded_logits - reference_logits).norm() / reference_logits.norm())
                           .item<double>();
          row.top1 = (reloaded_logits.argmax(-1) == reference_logits.argmax(-1))
                         .to(at::kFloat)
                         .mean()
                         .item<double>();
        }
      } catch (const Error& e) {
        row.error = e.what();
      }
      bar.finish();
      rows.push_back(row);
    }
  }

  bool failed = false;
  if (args.flag("json")) {
    Value out = Value::map();
    out.set("model", model_dir);
    out.set("metric", data ? "perplexity" : "relative logit error");
    out.set("full_precision", reference_metric);
    Value list = Value::list();
    for (const Row& r : rows) {
      Value v = Value::map();
      v.set("quant_method", r.method);
      v.set("variant", r.variant);
      if (!r.error.empty()) {
        v.set("error", r.error);
        failed = true;
      } else {
        v.set("bits_per_weight", r.bits_per_weight);
        v.set("checkpoint_bytes", r.checkpoint_bytes);
        v.set("seconds", r.seconds);
        v.set(data ? "perplexity" : "relative_error", r.metric);
        if (!data) v.set("top1_agreement", r.top1);
        v.set("reload_identical", r.reload_identical);
      }
      list.as_list().push_back(std::move(v));
    }
    out.set("methods", std::move(list));
    print_json(std::cout, out);
  } else {
    std::vector<std::vector<std::string>> table{{"method", "variant", "bits/weight", "checkpoint",
                                                 "time", data ? "perplexity" : "logit error",
                                                 data ? "" : "top-1 agree", "reload"}};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", reference_metric);
    table.push_back({"full precision", "-", "32", human_bytes(weight_bytes(model_dir)), "-",
                     data ? buf : "0", data ? "" : "100%", "-"});
    for (const Row& r : rows) {
      if (!r.error.empty()) {
        table.push_back({r.method, r.variant, "FAILED", r.error, "", "", "", ""});
        failed = true;
        continue;
      }
      std::vector<std::string> cells{r.method, r.variant};
      std::snprintf(buf, sizeof buf, "%.2f", r.bits_per_weight);
      cells.push_back(buf);
      cells.push_back(human_bytes(static_cast<int64_t>(r.checkpoint_bytes)));
      std::snprintf(buf, sizeof buf, "%.2f s", r.seconds);
      cells.push_back(buf);
      std::snprintf(buf, sizeof buf, data ? "%.4f" : "%.2e", r.metric);
      cells.push_back(buf);
      std::snprintf(buf, sizeof buf, "%.1f%%", 100 * r.top1);
      cells.push_back(data ? "" : buf);
      cells.push_back(r.reload_identical ? "identical" : "DIFFERS");
      failed |= !r.reload_identical;
      table.push_back(cells);
    }
    std::cout << "\n";
    print_table(std::cout, table);
    if (rows.empty()) std::cout << "(no quantization plugins found; see `qplug plugins`)\n";
    if (!data)
      std::cout << "\nlogit error: ||logits - fp32 logits|| / ||fp32 logits|| on 4 x 128 random "
                   "tokens; top-1 agree: how often the\nmost likely next token is unchanged. The "
                   "synthetic model has random weights, so its logits are nearly flat\nand these "
                   "errors are larger than on a trained model: pass --model DIR --data FILE for "
                   "perplexity.\n";
  }
  if (own_workdir && !args.flag("keep")) {
    std::error_code ec;
    fs::remove_all(workdir, ec);
  }
  return failed ? kExitError : kExitOk;
}

}  // namespace qplug::cli
