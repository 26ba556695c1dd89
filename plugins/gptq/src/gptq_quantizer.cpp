#include "gptq_quantizer.hpp"

#include <algorithm>
#include <map>

#include <ATen/ATen.h>

#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/host_services.hpp>
#include <qplug/sdk/linear.hpp>
#include <qplug/sdk/model.hpp>

#include "gptq_algorithm.hpp"
#include "gptq_kernel.hpp"
#include "packing.hpp"
#include "quantized_layers.hpp"

namespace qplug::gptq {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The block-by-block side of GPTQ: one Hessian per observed layer, then the solve.
class GptqCalibration final : public BlockCalibration {
 public:
  GptqCalibration(const GptqSettings& settings, const QuantConfig& config,
                  std::vector<FusedGroup> fused)
      : settings_(settings), config_(config), fused_(std::move(fused)) {}

  std::vector<std::vector<std::string>> layer_groups(
      int64_t, const std::vector<std::string>& layers) override {
    std::vector<std::vector<std::string>> groups;
    if (!settings_.true_sequential) return {layers};
    if (settings_.modules_in_block.empty()) {
      // optimum quantizes one layer at a time. Layers a serving engine fuses (q/k/v, gate/up)
      // read the same input, so quantizing one cannot change what the others see: observing
      // them in one pass gives exactly the same Hessians and saves whole passes.
      for (const auto& l : layers) {
        const FusedGroup* fused = fused_group_of(l);
        if (fused != nullptr && !groups.empty() && fused_group_of(groups.back().front()) == fused)
          groups.back().push_back(l);
        else
          groups.push_back({l});
      }
      return groups;
    }
    // optimum: each sub-list of modules_in_block_to_quantize is one step, in order.
    for (const auto& names : settings_.modules_in_block) {
      std::vector<std::string> group;
      for (const auto& name : names)
        for (const auto& l : layers)
          if (ends_with(l, name)) group.push_back(l);
      if (!group.empty()) groups.push_back(group);
    }
    return groups;
  }

  void observe(const std::string& layer, const at::Tensor& input) override {
    if (!at::isfinite(input).all().item<bool>())
      throw KernelError("NaN or infinite activations reach '" + layer +
                        "' during calibration; the model or the calibration data is broken");
    auto it = hessians_.find(layer);
    if (it == hessians_.end())
      it = hessians_.emplace(layer, HessianAccumulator(input.size(-1))).first;
    it->second.add_batch(input);
  }

  void quantize_group(Model& model, const std::vector<std::string>& layers,
                      HostServices& services) override {
    GptqOptions options;
    options.bits = settings_.bits;
    options.group_size = settings_.group_size;
    options.sym = settings_.sym;
    options.act_order = settings_.desc_act;
    options.static_groups = settings_.static_groups;
    options.percdamp = settings_.damp_percent;
    options.mse = settings_.mse;
    // v1 stores zero - 1 per field and cannot hold a zero of 0.
    options.min_zero = settings_.v1 ? 1 : 0;
    for (const auto& name : layers) {
      nn::LinearImpl* layer = model.find_linear(name);
      auto h = hessians_.find(name);
      if (h == hessians_.end()) throw KernelError("no calibration input reached '" + name + "'");
      const at::Tensor weight = layer->kernel().dequantize(DType::F32);
      const GptqResult result = quantize_layer(weight, h->second.hessian(), options);
      hessians_.erase(h);
      if (result.retries > 0)
        services.log(LogLevel::Warning,
                     "'" + name + "': the Hessian was not positive definite; dampening raised to " +
                         std::to_string(result.damp) + " after " + std::to_string(result.retries) +
                         " retries");
      install(model, *layer, name, result, services);
    }
  }

 private:
  void install(Model& model, nn::LinearImpl& layer, const std::string& name, const GptqResult& r,
               HostServices& services) {
    OwnedKernel kernel = services.make_linear_kernel(
        "gptq", shared::quantized_kernel_args(model, layer, name, config_, true));
    kernel.kernel->load_tensor("qweight", packing::pack_gptq_qweight(r.qint, settings_.bits));
    const at::Tensor zeros = r.zero.round().clamp(0, 255).to(at::kByte).contiguous();
    kernel.kernel->load_tensor("qzeros",
                               packing::pack_gptq_qzeros(zeros, settings_.bits, settings_.v1));
    kernel.kernel->load_tensor("scales", r.scale.t().contiguous().to(at::kHalf));
    kernel.kernel->load_tensor("g_idx", r.g_idx.to(at::kInt));
    if (layer.shape().has_bias) kernel.kernel->load_tensor("bias", layer.kernel().bias());
    kernel.kernel->process_weights_after_loading();
    layer.set_kernel(std::move(kernel));
  }

  const FusedGroup* fused_group_of(const std::string& layer) const {
    for (const auto& g : fused_)
      if (std::find(g.members.begin(), g.members.end(), layer) != g.members.end()) return &g;
    return nullptr;
  }

  GptqSettings settings_;
  const QuantConfig& config_;
  std::vector<FusedGroup> fused_;
  std::map<std::string, HessianAccumulator> hessians_;
};

}  // namespace

GptqQuantizer::GptqQuantizer(const QuantConfig& config, bool pre_quantized)
    : Quantizer(config, pre_quantized), settings_(settings_of(config)) {}

TargetingRequest GptqQuantizer::targeting_request() const {
  TargetingRequest r;
  r.only_in_blocks = true;
  r.block_container = settings_.block_name_to_quantize;
  if (!settings_.modules_in_block.empty()) {
    std::vector<std::string> flat;
    for (const auto& list : settings_.modules_in_block)
      flat.insert(flat.end(), list.begin(), list.end());
    r.modules_in_block = flat;
  }
  // GPTQModel's `dynamic`: a key "-:<regex>" keeps the modules it matches (re.match) dense.
  const Value& dynamic = config().get("dynamic");
  if (dynamic.is_map()) {
    std::vector<std::string> rules;
    for (const auto& [key, value] : dynamic.as_map()) {
      if (key.rfind("-:", 0) != 0)
        config().fail("dynamic", "per-module overrides ('" + key +
                                     "') are not supported; only \"-:<regex>\" exclusions");
      rules.push_back("re:(?:" + key.substr(2) + ").*");
    }
    r.skip_modules = rules;
  }
  r.skip_key = "dynamic";
  r.skip_hint =
      "list only packable layers in modules_in_block_to_quantize, or keep the layer dense with "
      "dynamic: {\"-:<regex of its name>\": {}}";
  return r;
}

std::optional<std::string> GptqQuantizer::unsupported_reason(const ModuleInfo& linear) const {
  if (auto reason =
          packing::gptq_unpackable_reason(linear.in_features, linear.out_features, settings_.bits))
    return reason;
  if (settings_.group_size > 0 && linear.in_features % settings_.group_size != 0)
    return "in_features " + std::to_string(linear.in_features) +
           " is not a multiple of group_size " + std::to_string(settings_.group_size);
  return std::nullopt;
}

int64_t GptqQuantizer::quantized_bytes(const ModuleInfo& linear) const {
  return gptq_layer_bytes(linear.in_features, linear.out_features, linear.has_bias, settings_.bits,
                          settings_.group_size);
}

CalibrationRequest GptqQuantizer::calibration_request() const {
  CalibrationRequest r;
  if (config().has("dataset")) r.dataset = config().get_string("dataset");
  r.samples = config().get_int("nsamples");
  r.seq_len = config().get_int("seqlen");
  return r;
}

void GptqQuantizer::process_model_before_weight_loading(Model& model, const TargetPlan& plan,
                                                        HostServices& services) {
  // A calibrated GPTQ model gets its kernels in quantize(), as each layer is solved; a checkpoint
  // brings its packed tensors, and round-to-nearest quantizes each weight as it arrives.
  if (!pre_quantized() && !settings_.rtn) return;
  shared::install_planned_kernels(model, plan, services, "gptq", config(), pre_quantized());
}

void GptqQuantizer::quantize(Model& model, const TargetPlan& plan, const CalibrationData& data,
                             HostServices& services) {
  GptqCalibration calibration(settings_, config(), model.describe().fused_groups);
  services.run_block_calibration(model, plan, data, calibration);
}

Value GptqQuantizer::serialized_config(const TargetPlan& plan) const {
  return transformers_config(config(), plan);
}

std::vector<std::pair<std::string, std::string>> GptqQuantizer::extra_files(
    const TargetPlan& plan) const {
  JsonWriteOptions pretty;
  pretty.indent = 2;
  return {{"quantize_config.json", to_json(gptqmodel_config(config(), plan), pretty) + "\n"}};
}

}  // namespace qplug::gptq
