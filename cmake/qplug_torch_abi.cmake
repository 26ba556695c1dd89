# Works out the CUDA part of the ABI identity of the LibTorch that was found (find_package(Torch)
# must have run). Host and plugins both use it, so a plugin compiled against a CUDA LibTorch is
# refused by a CPU-only host and the other way round, before any of its code runs.
#
# Sets QPLUG_TORCH_CUDA_VERSION (major*1000 + minor*10, 0 for CPU-only) and QPLUG_TORCH_CUDA_MAJOR.
if(NOT DEFINED QPLUG_TORCH_CUDA_VERSION)
  set(QPLUG_TORCH_CUDA_VERSION 0)
  set(QPLUG_TORCH_CUDA_MAJOR 0)
  if(TARGET torch_cuda OR TARGET c10_cuda)
    set(_qplug_cuda_version "")
    if(DEFINED CUDAToolkit_VERSION)
      set(_qplug_cuda_version "${CUDAToolkit_VERSION}")
    elseif(DEFINED CUDA_VERSION)
      set(_qplug_cuda_version "${CUDA_VERSION}")
    endif()
    if(_qplug_cuda_version MATCHES "^([0-9]+)\\.([0-9]+)")
      set(QPLUG_TORCH_CUDA_MAJOR "${CMAKE_MATCH_1}")
      math(EXPR QPLUG_TORCH_CUDA_VERSION "${CMAKE_MATCH_1} * 1000 + ${CMAKE_MATCH_2} * 10")
    else()
      message(WARNING "qplug: LibTorch has CUDA but its CUDA version is unknown; "
                      "the ABI tag will say CUDA 0")
    endif()
  endif()
endif()
message(STATUS "qplug: LibTorch ${Torch_VERSION}, CUDA tag ${QPLUG_TORCH_CUDA_VERSION}")

# Adds the ABI definitions to a target that includes <qplug/sdk/abi.hpp>.
function(qplug_add_abi_definitions target)
  target_compile_definitions(${target} PRIVATE
    QPLUG_TORCH_CUDA_VERSION=${QPLUG_TORCH_CUDA_VERSION}
    QPLUG_TORCH_CUDA_MAJOR=${QPLUG_TORCH_CUDA_MAJOR})
endfunction()
