# Finds the compiler that turns cuda/kernels/*.cu into PTX.

# The command-line flags of each compiler for a kernel file (followed by -I<include> <src> -o
# <ptx>): the build's PTX, the test kernels' and ctest's nvcc check use these alone.
# nvcc: -fmad=false: no contraction, so results match the emulator and the CPU bit for bit; IEEE
# division, square root and denormals spelled out rather than left to nvcc's defaults.
set(LAPERM_NVCC_FLAGS -ptx -arch=compute_${LAPERM_PTX_ARCH} -O3 -std=c++17 -fmad=false -ftz=false -prec-div=true
    -prec-sqrt=true -lineinfo)
# clang: CUDA to PTX without the CUDA SDK; -ffp-contract=off for the same reason as -fmad=false.
set(LAPERM_CLANG_PTX_FLAGS -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_${LAPERM_PTX_ARCH} -O3 -S
    -std=c++17 -ffp-contract=off -Xclang -target-feature -Xclang +ptx75 -Wall -Werror=return-type)
# Sets LAPERM_PTX_TOOL (nvcc, clang or empty), LAPERM_PTX_EXE, LAPERM_PTX_VERSION and, when
# empty, LAPERM_PTX_REASON (one sentence saying why no PTX is built).
function(laperm_probe_clang exe out_ok out_log)
  # The Debian/LLVM clang builds include the NVPTX back end, but check: compile a kernel
  # that uses a sync shuffle (needs the +ptx75 feature flag).
  set(dir ${CMAKE_BINARY_DIR}/probe)
  file(MAKE_DIRECTORY ${dir})
  file(WRITE ${dir}/probe.cu
    "extern \"C\" __attribute__((global)) void probe(int* p) { p[0] = __nvvm_shfl_sync_idx_i32(0xffffffffu, p[1], 0, 0x1f); }\n")
  execute_process(
    COMMAND ${exe} -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_${LAPERM_PTX_ARCH}
            -O3 -S -Xclang -target-feature -Xclang +ptx75 ${dir}/probe.cu -o ${dir}/probe.ptx
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 AND EXISTS ${dir}/probe.ptx)
    set(${out_ok} TRUE PARENT_SCOPE)
  else()
    set(${out_ok} FALSE PARENT_SCOPE)
  endif()
  set(${out_log} "${err}" PARENT_SCOPE)
endfunction()

macro(laperm_find_ptx_compiler)
  set(LAPERM_PTX_TOOL "")
  set(LAPERM_PTX_EXE "")
  set(LAPERM_PTX_VERSION "")
  set(LAPERM_PTX_REASON "")
  string(TOLOWER "${LAPERM_PTX_COMPILER}" _lp_choice)

  if(_lp_choice STREQUAL "none")
    set(LAPERM_PTX_REASON "disabled with -DLAPERM_PTX_COMPILER=none")
  endif()

  if(_lp_choice STREQUAL "auto" OR _lp_choice STREQUAL "nvcc")
    find_program(LAPERM_NVCC_EXE nvcc HINTS ENV CUDA_PATH ENV CUDA_HOME PATH_SUFFIXES bin
                 PATHS /usr/local/cuda/bin)
    if(LAPERM_NVCC_EXE)
      execute_process(COMMAND ${LAPERM_NVCC_EXE} --version OUTPUT_VARIABLE _lp_v RESULT_VARIABLE _lp_rc)
      if(_lp_rc EQUAL 0)
        string(REGEX MATCH "release [0-9.]+, V[0-9.]+" _lp_v "${_lp_v}")
        set(LAPERM_PTX_TOOL nvcc)
        set(LAPERM_PTX_EXE ${LAPERM_NVCC_EXE})
        set(LAPERM_PTX_VERSION "nvcc ${_lp_v}")
      endif()
    elseif(_lp_choice STREQUAL "nvcc")
      set(LAPERM_PTX_REASON "nvcc was requested but not found (set CUDA_PATH or put nvcc on PATH)")
    endif()
  endif()

  if(NOT LAPERM_PTX_TOOL AND (_lp_choice STREQUAL "auto" OR _lp_choice STREQUAL "clang"))
    find_program(LAPERM_CLANG_EXE NAMES clang-14 clang-15 clang-16 clang-17 clang-18 clang-19 clang)
    if(LAPERM_CLANG_EXE)
      laperm_probe_clang(${LAPERM_CLANG_EXE} _lp_ok _lp_log)
      if(_lp_ok)
        execute_process(COMMAND ${LAPERM_CLANG_EXE} --version OUTPUT_VARIABLE _lp_v)
        string(REGEX MATCH "^[^\n]*" _lp_v "${_lp_v}")
        set(LAPERM_PTX_TOOL clang)
        set(LAPERM_PTX_EXE ${LAPERM_CLANG_EXE})
        set(LAPERM_PTX_VERSION "${_lp_v}")
      else()
        set(LAPERM_PTX_REASON "${LAPERM_CLANG_EXE} cannot compile CUDA to PTX (no NVPTX back end?)")
      endif()
    elseif(NOT LAPERM_PTX_REASON)
      set(LAPERM_PTX_REASON "neither nvcc nor clang (14 or newer) was found; install clang-14 (Debian package clang-14) or the CUDA toolkit")
    endif()
  endif()

  if(LAPERM_PTX_TOOL)
    message(STATUS "LaPerm PTX compiler: ${LAPERM_PTX_VERSION} (compute capability ${LAPERM_PTX_ARCH})")
  else()
    message(STATUS "LaPerm PTX: not built: ${LAPERM_PTX_REASON}")
  endif()
endmacro()

# Finds ptxas, the PTX assembler the driver runs when it loads a module, to assemble every PTX
# file for a real architecture at build time (optional: the build stands without it). Sets
# LAPERM_PTXAS_EXE and LAPERM_PTXAS_VERSION, or LAPERM_PTXAS_REASON (why the PTX goes unassembled).
# Looks at -DLAPERM_PTXAS=<path> (none: off), the environment's LAPERM_PTXAS, nvcc's directory,
# CUDA_PATH/CUDA_HOME, PATH, /usr/local/cuda/bin and .tools/ptxas/ (where .ci/fetch-ptxas puts one).

# laperm_setting(<name> <out>): a setting given as -D<name>=..., or else in the environment.
function(laperm_setting name out)
  set(value "${${name}}")
  if(NOT value AND DEFINED ENV{${name}})
    set(value "$ENV{${name}}")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

macro(laperm_find_ptxas)
  set(LAPERM_PTXAS_EXE "")
  set(LAPERM_PTXAS_VERSION "")
  set(LAPERM_PTXAS_REASON "")
  laperm_setting(LAPERM_PTXAS _lp_ptxas)
  if(NOT LAPERM_PTX_TOOL)
    set(LAPERM_PTXAS_REASON "no PTX is built")
  elseif(_lp_ptxas STREQUAL "none")
    set(LAPERM_PTXAS_REASON "disabled with LAPERM_PTXAS=none")
  else()
    if(NOT _lp_ptxas)
      set(_lp_hints "")
      if(LAPERM_NVCC_EXE)
        get_filename_component(_lp_hints ${LAPERM_NVCC_EXE} DIRECTORY)
      endif()
      find_program(LAPERM_PTXAS_FOUND ptxas HINTS ${_lp_hints} ENV CUDA_PATH ENV CUDA_HOME PATH_SUFFIXES bin
                   PATHS /usr/local/cuda/bin ${CMAKE_SOURCE_DIR}/.tools/ptxas)
      set(_lp_ptxas "${LAPERM_PTXAS_FOUND}")
    endif()
    if(NOT _lp_ptxas OR NOT EXISTS "${_lp_ptxas}")
      set(LAPERM_PTXAS_REASON "no ptxas found (any CUDA toolkit's, or LAPERM_PTXAS=<path>; .ci/run fetches one)")
    else()
      execute_process(COMMAND ${_lp_ptxas} --version OUTPUT_VARIABLE _lp_v RESULT_VARIABLE _lp_rc ERROR_QUIET)
      string(REGEX MATCH "release ([0-9]+)\\.([0-9]+), V[0-9.]+" _lp_release "${_lp_v}")
      if(NOT _lp_rc EQUAL 0 OR NOT _lp_release)
        set(LAPERM_PTXAS_REASON "${_lp_ptxas} --version failed (exit code ${_lp_rc})")
      elseif(CMAKE_MATCH_1 LESS 11 OR (CMAKE_MATCH_1 EQUAL 11 AND CMAKE_MATCH_2 LESS 8))
        # sm_90 arrived with CUDA 11.8 (and clang's PTX is ISA 7.5, from 11.5).
        set(LAPERM_PTXAS_REASON "${_lp_ptxas} is ${_lp_release}; sm_${LAPERM_PTXAS_ARCH} needs 11.8 or newer")
      else()
        set(LAPERM_PTXAS_EXE "${_lp_ptxas}")
        set(LAPERM_PTXAS_VERSION "${_lp_release}")
      endif()
    endif()
  endif()
  if(LAPERM_PTXAS_EXE)
    message(STATUS "LaPerm PTX assembler: ptxas ${LAPERM_PTXAS_VERSION} (sm_${LAPERM_PTXAS_ARCH})")
  else()
    message(STATUS "LaPerm PTX not assembled: ${LAPERM_PTXAS_REASON}")
  endif()
endmacro()

# Finds an nvcc for ctest's nvcc check where the build's PTX compiler is clang (with nvcc as the
# PTX compiler the build itself is the check). Sets LAPERM_NVCC_CHECK_EXE (empty: no check).
# Looks at -DLAPERM_NVCC_CHECK=<path> (none: off), the environment's LAPERM_NVCC_CHECK, and
# .tools/nvcc (where .ci/fetch-nvcc puts one).
macro(laperm_find_nvcc_check)
  set(LAPERM_NVCC_CHECK_EXE "")
  laperm_setting(LAPERM_NVCC_CHECK _lp_nvcc)
  if(NOT _lp_nvcc)
    set(_lp_nvcc ${CMAKE_SOURCE_DIR}/.tools/nvcc/usr/lib/nvidia-cuda-toolkit/bin/nvcc)
  endif()
  if(LAPERM_PTX_TOOL STREQUAL "clang" AND NOT _lp_nvcc STREQUAL "none" AND EXISTS "${_lp_nvcc}")
    set(LAPERM_NVCC_CHECK_EXE "${_lp_nvcc}")
    message(STATUS "LaPerm nvcc check (ctest ptx_nvcc_*): ${LAPERM_NVCC_CHECK_EXE}")
  endif()
endmacro()
