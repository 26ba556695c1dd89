// Hugging Face checkpoint folders: config.json + safetensors (single file or sharded), and how a
// checkpoint's tensor names map onto a model's.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/model_description.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug {

// Reads <folder>/config.json. Throws CheckpointError when the folder or file is missing and
// ConfigError (with line and column) when it is not valid JSON or not an object.
Value read_model_config(const std::string& folder);

// A tensor a model expects from a checkpoint.
struct ExpectedTensor {
  std::string name;  // the model's full name
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  bool optional = false;  // a tied copy, which checkpoints usually leave out
};

// What a skeleton whose layers all load their own tensors expects: every module's tensors, tied
// copies optional. (With kernels that quantize while loading, ask the model instead:
// expected_checkpoint_tensors in model_io.hpp.)
std::vector<ExpectedTensor> expected_tensors(const ModelDescription& model);

// Maps every checkpoint tensor to the model tensor it fills (checkpoint name -> model name), after
// checking, from headers alone, that the checkpoint holds exactly what the model expects:
//  - a name may lack the base_model_prefix (checkpoints saved from the bare base model);
//  - tensors matching the architecture's ignore_on_load patterns (and old rotary inv_freq
//    buffers) are left out of the map;
//  - every non-optional expected tensor is present, with the expected shape; floating-point
//    tensors may come in another floating dtype (they are converted), others must match exactly,
//    except that a uint8 tensor may be stored through a view of any dtype (its bytes are read as
//    they are: stores_bytes_through_view).
// Throws CheckpointError naming the file and tensor: missing, unexpected, wrong shape, wrong dtype.
// Whether a checkpoint tensor holds the bytes of an expected uint8 tensor through a view of another
// dtype: bitsandbytes' bnb_4bit_quant_storage stores 4-bit codes [(n+1)/2, 1] as, say, bfloat16
// [(n+1)/4, 1]. The first dimension then counts that dtype's elements and the others are the same.
// Such bytes are never converted: loaders copy them as they are.
bool stores_bytes_through_view(const SafetensorsEntry& entry, const std::vector<int64_t>& shape,
                               DType dtype);

std::map<std::string, std::string> map_checkpoint_tensors(
    const std::vector<ExpectedTensor>& expected, const ModelDescription& model,
    const CheckpointFiles& files);

}  // namespace qplug
