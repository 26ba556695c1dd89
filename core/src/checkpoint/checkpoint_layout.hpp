// Where each checkpoint tensor goes in a model, and the one place where a checkpoint's layout
// differs from what kernels see: GPT-2's Conv1D stores its dense weight as [in, out].
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "models/layers.hpp"
#include "qplug/core/checkpoint.hpp"
#include "qplug/sdk/linear.hpp"
#include "qplug/sdk/model.hpp"

namespace qplug {

// One tensor of the model: a linear's kernel tensor (by suffix) or a module's own tensor.
struct TensorSlot {
  nn::LinearImpl* linear = nullptr;
  models::TensorHolder* holder = nullptr;
  std::string local;        // kernel suffix, or the module's tensor name
  TensorSpec spec;          // as the model holds it ([out, in] for linears)
  bool transposed = false;  // stored [in, out] in checkpoints
  bool optional = false;    // a tied copy
};

// Every tensor the model loads, by full name. With `for_saving`, linears report what their
// kernels hold now (tensor_specs) rather than what they accept (input_tensor_specs).
std::map<std::string, TensorSlot> tensor_slots(Model& model, bool for_saving);

// Whether a kernel's checkpoint tensors are known from its tensor_specs() alone: a quantized
// kernel whose specs are all sized (a -1 stands for a size known once quantized). Such a
// layer's tensors are its own, so nothing can be tied to them, and tensors() may build them for
// the call (bnb's interleaved rows split back into two tensors, GPTQ and AWQ's qweight repacked
// from strips): describing a model or planning a save from the specs spares a pass of copies.
bool specs_describe_tensors(const LinearKernel& kernel);

// The checkpoint's shape for a slot (transposed for Conv1D dense weights).
std::vector<int64_t> checkpoint_shape(const TensorSlot& slot);
// Between checkpoint layout and model layout.
at::Tensor from_checkpoint_layout(const TensorSlot& slot, const at::Tensor& stored);
at::Tensor to_checkpoint_layout(const TensorSlot& slot, const at::Tensor& held);

}  // namespace qplug
