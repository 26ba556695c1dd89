// Loading and saving Hugging Face checkpoint folders.
//
// Loading builds the architecture's skeleton on the meta device, lets the quantizer (if any) swap
// kernels on it, checks the safetensors headers against it, then streams the weights in shard by
// shard from the memory map: each tensor is copied (or converted) into its own allocation and its
// mapped pages are released, so resident memory stays near the size of the loaded model.
//
// Saving writes into a temporary folder beside the destination and renames it into place, so a
// crash or a full disk never leaves a half-written checkpoint, and an existing folder is replaced
// only with overwrite.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qplug/core/checkpoint.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_handle.hpp"
#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/host_services.hpp"
#include "qplug/sdk/model.hpp"
#include "qplug/sdk/targeting.hpp"

namespace qplug {

struct LoadOptions {
  std::optional<DType> dtype;  // default: the quantizer's choice, else config.json's torch_dtype
  std::string device = "cpu";
  // Needed for quantized checkpoints and for quantizing while loading.
  const PluginHost* host = nullptr;
  // A quantization config: merged with a quantized checkpoint's, or applied while loading by a
  // method that needs no calibration (bitsandbytes). Calibration methods ignore it here: the
  // model loads dense and quantize() runs afterwards.
  const Value* quant_config = nullptr;
  HostServices* services = nullptr;  // progress and logs; quiet when null
};

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::optional<QuantizerHandle> quantizer;  // set when the model is or was quantized on load
  TargetPlan plan;                           // what the quantizer decided (empty otherwise)
};

// Throws CheckpointError (missing/unexpected tensor, wrong shape, unreadable file) naming the file
// and tensor, ConfigError for config.json problems, PluginLoadError when no plugin provides the
// checkpoint's method.
LoadedModel load_model(const std::string& folder, const LoadOptions& options = {});

// The tensors a model expects from a checkpoint, in checkpoint layout (tied copies optional),
// with kernels that quantize while loading expecting their dense input.
std::vector<ExpectedTensor> expected_checkpoint_tensors(Model& model);

struct SaveOptions {
  bool overwrite = false;
  uint64_t max_shard_bytes = 5000000000ull;  // transformers' default "5GB"
  // Tokenizer, generation config, licence and other files are copied from here (every regular
  // file that is not config.json or a weight file).
  std::string copy_files_from;
  // Written next to config.json (e.g. GPTQ's quantize_config.json): name -> contents.
  std::vector<std::pair<std::string, std::string>> extra_files;
};

// Writes config.json (with quantization_config when the model is quantized), the weights
// (sharded above max_shard_bytes, with model.safetensors.index.json), and the copied files.
// Throws CheckpointError naming the folder; on failure nothing is left at `folder`.
void save_model(Model& model, const std::string& folder, const SaveOptions& options = {});

// config.json text exactly as transformers writes it: indent 2, sorted keys, a final newline.
std::string config_json_text(const Value& hf_config);

}  // namespace qplug
