# qplug_add_plugin(<target> SOURCES <files...> [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
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
