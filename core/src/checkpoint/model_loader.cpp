// load_model: skeleton on meta -> quantizer preprocessing -> header check -> streaming load.
#include <algorithm>
#include <cstring>

#include <ATen/ops/from_blob.h>

#include "checkpoint/checkpoint_layout.hpp"
#include "models/transformer_model.hpp"
#include "qplug/core/calibration.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/sdk/errors.hpp"
#include "qplug/sdk/guard.hpp"
#include "qplug/sdk/tensor_memory.hpp"
#include "qplug/sdk/torch_interop.hpp"

namespace qplug {

namespace {

// Stands in when the caller passes no services: no progress, no logs, kernels from the host.
class QuietServices final : public HostServices {
 public:
  explicit QuietServices(const PluginHost* host) : host_(host) {}
  OwnedKernel make_linear_kernel(const std::string& method, const LinearKernelArgs& args) override {
    if (host_ == nullptr)
      throw UnsupportedError("no plugin host was given, so no '" + method + "' kernel exists");
    return host_->make_linear_kernel(method, args);
  }
  void run_block_calibration(Model& model, const TargetPlan& plan, const CalibrationData& data,
                             BlockCalibration& method) override {
    qplug::run_block_calibration(model, plan, data, method, *this);
  }
  void run_block_calibration_on_original_activations(Model& model, const TargetPlan& plan,
                                                     const CalibrationData& data,
                                                     BlockCalibration& method) override {
    qplug::run_block_calibration(model, plan, data, method, *this, false);
  }
  void progress(const std::string&, int64_t, int64_t) override {}
  void log(LogLevel, const std::string&) override {}

 private:
  const PluginHost* host_;
};

// Copying (or converting) this many bytes of the map at a time, then releasing them, keeps at most
// one chunk of a tensor resident twice, whatever the tensor's size.
constexpr uint64_t kChunkBytes = 16ull << 20;

// One checkpoint tensor, as a tensor the model owns, in `target` dtype.
at::Tensor read_tensor(const SafetensorsFile& file, const SafetensorsEntry& entry,
                       c10::ScalarType target) {
  const c10::ScalarType stored = to_scalar_type(entry.dtype);
  at::Tensor out = empty_for_weights(entry.shape, target);
  const int64_t numel = entry.numel();
  if (numel == 0) return out;
  at::Tensor flat = out.view({numel});
  const uint8_t* bytes = file.data(entry);
  const int64_t item = static_cast<int64_t>(c10::elementSize(stored));
  const int64_t per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes) / item);
  const uint64_t base = file.data_offset() + entry.begin;
  for (int64_t first = 0; first < numel; first += per_chunk) {
    const int64_t n = std::min(per_chunk, numel - first);
    at::Tensor source = at::from_blob(const_cast<uint8_t*>(bytes) + first * item, {n},
                                      at::TensorOptions().dtype(stored));
    flat.narrow(0, first, n).copy_(source);  // converts when the dtypes differ
    file.mapping().release(base + static_cast<uint64_t>(first * item),
                           base + static_cast<uint64_t>((first + n) * item));
  }
  return out;
}

void deliver(const std::string& name, const TensorSlot& slot, const at::Tensor& value) {
  if (slot.holder != nullptr) {
    slot.holder->set_tensor(slot.local, value);
    return;
  }
  nn::LinearImpl& layer = *slot.linear;
  guarded(layer.kernel_owner(), "LinearKernel::load_tensor",
          [&] { layer.kernel().load_tensor(slot.local, value); });
  (void)name;
}

}  // namespace

std::vector<ExpectedTensor> expected_checkpoint_tensors(Model& model) {
  std::vector<ExpectedTensor> out;
  for (const auto& [name, slot] : tensor_slots(model, /*for_saving=*/false))
    out.push_back({name, checkpoint_shape(slot), slot.spec.dtype, slot.optional});
  return out;
}

LoadedModel load_model(const std::string& folder, const LoadOptions& options) {
  QuietServices quiet(options.host);
  HostServices& services = options.services ? *options.services : quiet;
  const Value hf_config = read_model_config(folder);

  LoadedModel loaded;
  // A quantizer applies to a quantized checkpoint, or while loading for a method that needs no
  // calibration; calibration methods load the dense model and quantize afterwards.
  if (is_pre_quantized(hf_config) || options.quant_config != nullptr) {
    if (options.host == nullptr)
      throw UnsupportedError(folder +
                             " needs a quantization plugin to load, but no plugin host "
                             "was given");
    QuantizerHandle handle = choose_quantizer(*options.host, hf_config, options.quant_config);
    if (handle.pre_quantized() || !handle.requires_calibration()) loaded.quantizer = handle;
  }
  std::optional<DType> dtype = options.dtype;
  if (loaded.quantizer) dtype = loaded.quantizer->update_dtype(dtype);

  ModelBuildOptions build;
  build.dtype = dtype;
  build.device = "meta";
  loaded.model = build_model(hf_config, build);
  auto* transformer = dynamic_cast<models::TransformerModel*>(loaded.model.get());
  if (loaded.quantizer) loaded.plan = loaded.quantizer->preprocess_model(*loaded.model, services);

  const CheckpointFiles files = CheckpointFiles::open(folder, /*header_only=*/false);
  const ModelDescription description = loaded.model->describe();
  const auto mapping =
      map_checkpoint_tensors(expected_checkpoint_tensors(*loaded.model), description, files);
  const auto slots = tensor_slots(*loaded.model, /*for_saving=*/false);

  int64_t done = 0;
  const int64_t total = static_cast<int64_t>(mapping.size());
  for (const auto& file : files.files()) {
    for (const SafetensorsEntry& entry : file->entries()) {
      auto target = mapping.find(entry.name);
      if (target == mapping.end()) continue;  // ignored by the architecture
      const TensorSlot& slot = slots.at(target->second);
      at::Tensor value;
      if (stores_bytes_through_view(entry, checkpoint_shape(slot), slot.spec.dtype)) {
        // Its bytes as they are (bitsandbytes' quant_storage): a conversion would change them.
        std::vector<int64_t> shape = entry.shape;
        shape[0] *= dtype_size(entry.dtype);
        value = read_tensor(*file, entry, to_scalar_type(entry.dtype))
                    .view({-1})
                    .view(at::kByte)
                    .view(shape);
      } else {
        value = from_checkpoint_layout(slot,
                                       read_tensor(*file, entry, to_scalar_type(slot.spec.dtype)));
      }
      deliver(target->second, slot, value);
      services.progress("loading " + folder, ++done, total);
    }
  }
  for (const NamedLinear& named : loaded.model->linear_layers())
    guarded(named.layer->kernel_owner(), "LinearKernel::process_weights_after_loading",
            [&] { named.layer->kernel().process_weights_after_loading(); });
  transformer->set_device("cpu");
  transformer->tie_weights();
  if (loaded.quantizer) loaded.quantizer->postprocess_model(*loaded.model, services);
  if (options.device != "cpu") loaded.model->to_device(options.device);
  return loaded;
}

}  // namespace qplug
