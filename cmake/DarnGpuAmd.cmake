# DarnGpuAmd.cmake — DARN_GPU=amd: the hip/*.hip kernels compiled as HIP by clang++ into libdarn.
#
# CMake's own HIP language does not work with Debian's ROCm layout, so the .hip files are compiled as
# CXX with `-x hip` by a clang++ (Debian: clang++-15; a ROCm install: /opt/rocm/llvm/bin/clang++).
# Inputs (cache):  GPU_TARGETS                offload archs, e.g. "gfx90a;gfx942"
#                  DARN_ROCM_PATH             --rocm-path (auto: /usr on Debian, empty with /opt/rocm)
#                  DARN_ROCM_DEVICE_LIB_PATH  --rocm-device-lib-path (auto likewise)
# Uses: DARN_GPU_SOURCES (from the root CMakeLists.txt), target darn.

enable_language(CXX)
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "DARN_GPU=amd needs clang++ as the C++ compiler (HIP is compiled as C++ with "
                      "-x hip), got ${CMAKE_CXX_COMPILER_ID} '${CMAKE_CXX_COMPILER}'. Configure a fresh "
                      "build directory with -DCMAKE_CXX_COMPILER=clang++-15 (Debian) or "
                      "/opt/rocm/llvm/bin/clang++ (ROCm).")
endif()

set(GPU_TARGETS "gfx90a;gfx940;gfx1030" CACHE STRING "AMD GPU architectures to compile the kernels for")
if(NOT GPU_TARGETS)
  message(FATAL_ERROR "DARN_GPU=amd: GPU_TARGETS is empty")
endif()

# Debian/Ubuntu ship ROCm under /usr with the device libraries in the multiarch directory; clang does
# not find them there by itself. A regular ROCm install (/opt/rocm) needs nothing.
set(_darn_rocm_path "")
set(_darn_devlib_path "")
if(NOT EXISTS /opt/rocm AND NOT DEFINED ENV{ROCM_PATH})
  foreach(_d /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/amdgcn/bitcode /usr/lib/x86_64-linux-gnu/amdgcn/bitcode
             /usr/lib/amdgcn/bitcode)
    if(EXISTS ${_d}/ocml.bc)
      set(_darn_rocm_path /usr)
      set(_darn_devlib_path ${_d})
      break()
    endif()
  endforeach()
endif()
set(DARN_ROCM_PATH "${_darn_rocm_path}" CACHE PATH "clang --rocm-path (empty: clang's default)")
set(DARN_ROCM_DEVICE_LIB_PATH "${_darn_devlib_path}" CACHE PATH
    "clang --rocm-device-lib-path (empty: clang's default)")

find_package(hip CONFIG REQUIRED HINTS /opt/rocm /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/hip)

# "SHELL:-x hip" exactly as hip::device spells it, so CMake's option de-duplication keeps the pair.
set(DARN_HIP_FLAGS "SHELL:-x hip")
foreach(_arch IN LISTS GPU_TARGETS)
  list(APPEND DARN_HIP_FLAGS --offload-arch=${_arch})
endforeach()
if(DARN_ROCM_PATH)
  list(APPEND DARN_HIP_FLAGS --rocm-path=${DARN_ROCM_PATH})
endif()
if(DARN_ROCM_DEVICE_LIB_PATH)
  list(APPEND DARN_HIP_FLAGS --rocm-device-lib-path=${DARN_ROCM_DEVICE_LIB_PATH})
endif()
# The numerics contract (docs/numerics.md §1): no contraction, IEEE division and sqrt, no FTZ.
list(APPEND DARN_HIP_FLAGS
  -ffp-contract=off -fhip-fp32-correctly-rounded-divide-sqrt -fno-gpu-flush-denormals-to-zero
  -Wall -Wextra)
if(DARN_WERROR)
  list(APPEND DARN_HIP_FLAGS -Werror)
endif()

if(DARN_GPU_SOURCES)
  set_source_files_properties(${DARN_GPU_SOURCES} PROPERTIES LANGUAGE CXX)
  target_sources(darn PRIVATE ${DARN_GPU_SOURCES})
  target_compile_options(darn PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:${DARN_HIP_FLAGS}>")
  set_target_properties(darn PROPERTIES LINKER_LANGUAGE CXX)
else()
  message(WARNING "DARN_GPU=amd but there are no hip/*.hip sources yet: the GPU backend is empty")
endif()
set_target_properties(darn PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
# hip::device (compile flags, --hip-link) is for building darn only. What a program linking a static
# libdarn needs is just the HIP runtime: darnConfig.cmake finds libamdhip64 itself, because hip's own
# package config cannot be loaded by a C-only project.
target_link_libraries(darn PRIVATE $<BUILD_INTERFACE:hip::device> $<INSTALL_INTERFACE:darn::hip_runtime>)
target_compile_definitions(darn PRIVATE DARN_HAVE_GPU=1 __HIP_PLATFORM_AMD__=1)
# GPU-side includes shared with the CPU backend (src/contract.h) come through the PRIVATE src/ dir.

get_target_property(_darn_amdhip64 hip::amdhip64 IMPORTED_LOCATION_RELEASE)
if(NOT _darn_amdhip64)
  get_target_property(_darn_amdhip64 hip::amdhip64 LOCATION)
endif()
get_filename_component(_darn_amdhip64_dir "${_darn_amdhip64}" DIRECTORY)
string(APPEND DARN_CONFIG_DEPENDENCIES
  "if(NOT TARGET darn::hip_runtime)\n"
  "  find_library(DARN_AMDHIP64_LIBRARY amdhip64 HINTS \"${_darn_amdhip64_dir}\" ENV ROCM_PATH /opt/rocm PATH_SUFFIXES lib)\n"
  "  if(NOT DARN_AMDHIP64_LIBRARY)\n"
  "    set(darn_FOUND FALSE)\n"
  "    set(darn_NOT_FOUND_MESSAGE \"darn (static, DARN_GPU=amd) needs libamdhip64\")\n"
  "    return()\n"
  "  endif()\n"
  "  add_library(darn::hip_runtime INTERFACE IMPORTED)\n"
  "  set_target_properties(darn::hip_runtime PROPERTIES INTERFACE_LINK_LIBRARIES \"\${DARN_AMDHIP64_LIBRARY};stdc++\")\n"
  "endif()\n")
string(APPEND DARN_PC_LIBS_PRIVATE " -lamdhip64 -lstdc++")
string(REPLACE ";" " " _darn_flags_str "${DARN_HIP_FLAGS}")
message(STATUS "darn: AMD GPU backend via ${CMAKE_CXX_COMPILER} (${CMAKE_CXX_COMPILER_VERSION}): ${_darn_flags_str}")
