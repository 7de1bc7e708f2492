# DarnGpuNvidia.cmake — DARN_GPU=nvidia: the hip/*.hip kernels compiled by nvcc as CUDA, through HIP's
# NVIDIA headers (__HIP_PLATFORM_NVIDIA__), into libdarn with a static CUDA runtime.
#
# Debian 12: -DCMAKE_CUDA_COMPILER=/usr/bin/nvcc (CUDA 11.8) -DCMAKE_CUDA_HOST_COMPILER=clang++-14
# (nvcc 11.8 rejects gcc 12), and /usr/bin before any other CUDA's bin/ on PATH (nvcc runs the
# `ptxas` it finds on PATH).
# Inputs (cache):  CMAKE_CUDA_ARCHITECTURES   default "80;90"
#                  DARN_HIP_INCLUDE_DIR       where hip/hip_runtime.h lives (auto-detected)
# Uses: DARN_GPU_SOURCES (from the root CMakeLists.txt), target darn.

# nvcc 11.x rejects gcc >= 12 as host compiler: default to clang++-14 where it exists.
if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
  find_program(_darn_clangxx14 clang++-14)
  if(_darn_clangxx14)
    set(CMAKE_CUDA_HOST_COMPILER ${_darn_clangxx14} CACHE FILEPATH "host compiler for nvcc")
  endif()
endif()

# nvcc runs the first `ptxas` on PATH: one from another CUDA version (e.g. CUDA 13 in
# /usr/local/cuda/bin before Debian's 11.8 in /usr/bin) fails with "Value 'sm_NN' is not defined".
if(CMAKE_CUDA_COMPILER)
  get_filename_component(_darn_nvcc_dir "${CMAKE_CUDA_COMPILER}" DIRECTORY)
  find_program(_darn_ptxas ptxas NO_CACHE)
  if(_darn_ptxas AND EXISTS "${_darn_nvcc_dir}/ptxas")
    file(REAL_PATH "${_darn_ptxas}" _darn_ptxas_real)
    file(REAL_PATH "${_darn_nvcc_dir}/ptxas" _darn_ptxas_want)
    if(NOT _darn_ptxas_real STREQUAL _darn_ptxas_want)
      message(FATAL_ERROR "DARN_GPU=nvidia: the first ptxas on PATH (${_darn_ptxas}) is not the one "
                          "beside ${CMAKE_CUDA_COMPILER}; nvcc would use it. Put ${_darn_nvcc_dir} "
                          "first on PATH, e.g. PATH=${_darn_nvcc_dir}:$PATH cmake ... (and for the build).")
    endif()
  endif()
endif()

set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "NVIDIA architectures to compile the kernels for")
endif()
enable_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA")
  message(FATAL_ERROR "DARN_GPU=nvidia needs nvcc as the CUDA compiler, got ${CMAKE_CUDA_COMPILER_ID}")
endif()
find_package(CUDAToolkit REQUIRED)

if(CMAKE_CUDA_COMPILER_VERSION VERSION_LESS 11.8 AND CMAKE_CUDA_ARCHITECTURES MATCHES "9[0-9]")
  message(FATAL_ERROR "nvcc ${CMAKE_CUDA_COMPILER_VERSION} cannot build sm_90: set CMAKE_CUDA_ARCHITECTURES")
endif()

find_path(DARN_HIP_INCLUDE_DIR hip/hip_runtime.h
  HINTS ENV HIP_PATH /opt/rocm
  PATH_SUFFIXES include
  DOC "directory holding the HIP headers (hip/hip_runtime.h) for the NVIDIA platform")
if(NOT DARN_HIP_INCLUDE_DIR OR NOT EXISTS ${DARN_HIP_INCLUDE_DIR}/hip/nvidia_detail/nvidia_hip_runtime.h)
  message(FATAL_ERROR "DARN_GPU=nvidia needs the HIP headers with the NVIDIA platform "
                      "(hip/nvidia_detail/): apt-get install libamdhip64-dev, or set DARN_HIP_INCLUDE_DIR")
endif()

# The numerics contract (docs/numerics.md §1): no FMA contraction, IEEE division and sqrt, no FTZ.
set(DARN_NVCC_FLAGS --fmad=false --prec-div=true --prec-sqrt=true --ftz=false
    -Xcompiler=-ffp-contract=off)
if(DARN_WERROR)
  list(APPEND DARN_NVCC_FLAGS --Werror=all-warnings)
endif()

if(DARN_GPU_SOURCES)
  set_source_files_properties(${DARN_GPU_SOURCES} PROPERTIES LANGUAGE CUDA)
  target_sources(darn PRIVATE ${DARN_GPU_SOURCES})
  target_compile_options(darn PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:${DARN_NVCC_FLAGS}>")
else()
  message(WARNING "DARN_GPU=nvidia but there are no hip/*.hip sources yet: the GPU backend is empty")
endif()
set_target_properties(darn PROPERTIES
  CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}" # darn exists before enable_language(CUDA)
  CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF
  CUDA_RUNTIME_LIBRARY Static)
target_compile_definitions(darn PRIVATE DARN_HAVE_GPU=1 __HIP_PLATFORM_NVIDIA__=1)
# A test build: the kernels see 64-wide waves, their upper exchange through shared memory (hip/compat.h),
# so that the wave64 code paths of AMD's gfx9 run on NVIDIA, bit for bit against the CPU.
option(DARN_EMULATE_WAVE64 "NVIDIA only: kernels emulate AMD's 64-wide waves (test build)" OFF)
if(DARN_EMULATE_WAVE64)
  target_compile_definitions(darn PRIVATE DARN_EMULATE_WAVE64=1)
  message(STATUS "darn: DARN_EMULATE_WAVE64=ON (kernels use 64-wide emulated waves)")
endif()
# (hiprand/ sits beside hip/ in the same directory.) Never add /usr/include itself: -isystem
# /usr/include breaks libstdc++'s #include_next.
if(NOT DARN_HIP_INCLUDE_DIR STREQUAL "/usr/include")
  target_include_directories(darn SYSTEM PRIVATE ${DARN_HIP_INCLUDE_DIR})
endif()
# libdarn is a C library; its final link (and a C program's link with a static libdarn) needs the
# CUDA runtime explicitly.
target_link_libraries(darn PRIVATE CUDA::cudart_static)

# A static libdarn needs the cudart_static of the toolkit that compiled it, not whichever CUDA comes
# first on the consumer's PATH.
get_filename_component(_darn_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
string(APPEND DARN_CONFIG_DEPENDENCIES
  "if(NOT DEFINED CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT})\n"
  "  set(CUDAToolkit_ROOT \"${_darn_cuda_root}\")\n"
  "endif()\n"
  "find_dependency(CUDAToolkit)\n")
string(APPEND DARN_PC_LIBS_PRIVATE " -L${CUDAToolkit_LIBRARY_DIR} -lcudart_static -ldl -lrt -lpthread -lstdc++")
string(REPLACE ";" " " _darn_flags_str "${DARN_NVCC_FLAGS}")
message(STATUS "darn: NVIDIA GPU backend via ${CMAKE_CUDA_COMPILER} ${CMAKE_CUDA_COMPILER_VERSION} "
               "(host ${CMAKE_CUDA_HOST_COMPILER}), archs ${CMAKE_CUDA_ARCHITECTURES}: ${_darn_flags_str}")
