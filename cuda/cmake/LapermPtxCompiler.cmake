# Finds the compiler that turns cuda/kernels/*.cu into PTX.
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
