// Forward declarations of the few LibTorch types the SDK's interfaces name, so that headers which
// only pass tensors around do not cost every includer the full LibTorch parse.
#pragma once

namespace at {
class Tensor;
}  // namespace at
namespace c10 {
struct Device;
}  // namespace c10
namespace torch {
namespace nn {
class Module;
}  // namespace nn
}  // namespace torch
