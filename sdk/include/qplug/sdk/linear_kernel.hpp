// A linear kernel owns one linear layer's tensors and its matmul. qplug::nn::Linear delegates to
// it, so quantizing a layer swaps its kernel while the module, its name and its place in the tree
// stay. A kernel also names the layer's on-disk tensors by suffix ("weight", "qweight",
// "weight.absmax", "weight.quant_state.bitsandbytes__nf4"), so state dicts carry the exact names
// the Hugging Face formats use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qplug/sdk/dtype.hpp"
#include "qplug/sdk/torch_fwd.hpp"

namespace qplug {

class QuantConfig;

struct LinearShape {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool has_bias = false;
};

// One tensor a kernel stores in a checkpoint.
struct TensorSpec {
  std::string suffix;  // after "<layer name>.": "qweight", "weight.absmax", ...
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  int64_t bytes() const;
};

// What a kernel factory gets.
struct LinearKernelArgs {
  std::string layer;  // full module name, for messages
  LinearShape shape;
  DType dtype = DType::F32;             // the layer's activation / compute dtype
  std::string device = "cpu";           // "cpu", "cuda", "cuda:1", "meta"
  const QuantConfig* config = nullptr;  // the method's validated config (null for dense)
  // True: load_tensor() receives the method's packed tensors (a quantized checkpoint).
  // False: it receives the dense "weight"/"bias" and quantizes them on arrival (bnb on-the-fly).
  bool pre_quantized = false;
};

class LinearKernel {
 public:
  virtual ~LinearKernel();

  // Short name for messages and `qplug inspect`: "dense", "bnb_nf4", "gptq_int4".
  virtual std::string name() const = 0;
  // The quant_method whose format this kernel holds ("" for dense).
  virtual std::string quant_method() const = 0;
  virtual LinearShape shape() const = 0;

  // The tensors this layer writes to (and expects in) a checkpoint, in save order.
  virtual std::vector<TensorSpec> tensor_specs() const = 0;
  // The tensors load_tensor() accepts from a checkpoint. The same as tensor_specs() for a kernel
  // that loads its own format (dense, or a pre-quantized checkpoint); the dense "weight" (and
  // "bias") for one that quantizes while loading. The loader converts floating-point tensors
  // stored in another floating dtype; a uint8 tensor may also come stored through a view of
  // another dtype (bitsandbytes' bnb_4bit_quant_storage: [2n, 1] bytes as bfloat16 [n, 1]), whose
  // bytes load_tensor() then gets unchanged, as uint8 of the shape the spec names.
  virtual std::vector<TensorSpec> input_tensor_specs() const { return tensor_specs(); }
  // The current tensors, by suffix, in the same order. Empty until loaded.
  virtual std::vector<std::pair<std::string, at::Tensor>> tensors() const = 0;
  // Accepts one tensor by suffix. Throws CheckpointError (naming args.layer and the suffix) for an
  // unknown suffix, a wrong shape or dtype.
  virtual void load_tensor(const std::string& suffix, const at::Tensor& value) = 0;
  // Called once every tensor was loaded: check completeness and consistency, repack if needed.
  virtual void process_weights_after_loading() = 0;

  // y = x W^T + b for x of shape [..., in_features], in x's dtype.
  virtual at::Tensor apply(const at::Tensor& x) = 0;
  // The full-precision weight [out, in] this kernel represents, in `dtype`.
  virtual at::Tensor dequantize(DType dtype) const = 0;
  // The bias (undefined tensor when the layer has none).
  virtual at::Tensor bias() const = 0;

  virtual bool is_supported(const c10::Device& device, DType activation_dtype) const = 0;
  // Moves the tensors; the data format never changes.
  virtual void to(const c10::Device& device) = 0;

  // Bytes of its checkpoint tensors: from tensor_specs() before loading and for a quantized
  // kernel whose specs are all sized (its tensors() may build copies), else from tensors().
  int64_t bytes() const;
};

// A kernel and the plugin whose code it is ("core" for dense): errors from it name the owner.
struct OwnedKernel {
  std::shared_ptr<LinearKernel> kernel;
  std::string owner;
};

// The dense kernel (core's): weight [out, in] and optional bias, y = x W^T + b, owner "core".
OwnedKernel make_dense_kernel(const LinearKernelArgs& args);

}  // namespace qplug
