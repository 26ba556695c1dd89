# qplug_add_plugin(<target> SOURCES <files...> [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
# qplug_kernel_source(<file> [<compile option>...])
#
# Builds a qplug plugin: a MODULE library linked only against the SDK (qplug::sdk), with hidden
# visibility (only the descriptor and ABI-tag aliases are exported), no undefined symbols, the ABI
# definitions of the LibTorch in use, and an install rule into <libdir>/qplug/plugins.
# Works in the qplug tree and, through find_package(qplug), for third-party plugins.
function(qplug_add_plugin target)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "qplug_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE qplug::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    CXX_STANDARD 17
    CXX_STANDARD_REQUIRED ON)
  # Resolve every symbol at link time: a plugin that would fail to load fails to build instead.
  target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  if(COMMAND qplug_add_abi_definitions)
    qplug_add_abi_definitions(${target})
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED QPLUG_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${QPLUG_PLUGIN_OUTPUT_DIR}")
  endif()
  # Installed plugins find libqplug_core two levels up.
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN/../..")
  if(NOT ARG_NO_INSTALL)
    include(GNUInstallDirs)
    install(TARGETS ${target} LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}/qplug/plugins")
  endif()
endfunction()

# qplug_kernel_source(<file> [<compile option>...]): compiles <file>, a CPU kernel source of a
# target in the calling directory, with the given options (its instruction set: -mavx2, -mfma,
# -mavx512f...) and -O3 in every configuration but Debug. Register-blocked kernels are loops with
# small fixed counts that must become straight-line code over registers, and GCC fully unrolls them
# only at -O3: at -O2 (RelWithDebInfo, or Debian's package flags) the bnb AVX-512 tiles kept their
# accumulators in memory and ran 3.7x slower. -O3 is appended after the configuration's flags, and
# the last -O on a command line wins. qplug's own kernels are compiled this way.
function(qplug_kernel_source file)
  set(options ${ARGN} "$<$<NOT:$<CONFIG:Debug>>:-O3>")
  set_source_files_properties(${file} PROPERTIES COMPILE_OPTIONS "${options}")
endfunction()
