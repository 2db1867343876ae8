# Writes ptx/manifest.json (cmake -P). Inputs (-D): PTX_FILES and EMU_KERNELS ("|"-separated),
# TOOL, TOOL_VERSION, ARCH, REASON, OUT; PTXAS_LOGS (one ptxas -v report per PTX file, same order,
# or empty), PTXAS_VERSION and PTXAS_ARCH when the build assembled the PTX.
#
# {
#   "available": true,                  false when no PTX compiler was found
#   "reason": null,                     or one sentence saying why PTX is unavailable
#   "compiler": "clang", "compilerVersion": "Debian clang version 14.0.6", "arch": "sm_80",
#   "assembler": "ptxas release 11.8, V11.8.89 for sm_90",   null when the PTX was not assembled
#   "files": [ { "file": "axpy.ptx", "kernels": ["axpy_v1", "axpy_v2"],
#                "staticSharedBytes": { "axpy_v1": 0, ... },
#                "maxThreads": { "axpy_v1": 0, ... },         __launch_bounds__ (0: none)
#                "registers": { "axpy_v1": 10, ... },        with an assembler only
#                "spillStoreBytes": { "axpy_v1": 0, ... } }, ... ]   with an assembler only
# }
# staticSharedBytes counts the __shared__ variables declared inside each kernel's body
# (LapermPtxScan.cmake).
# Fails if the PTX entry points and the kernels registered in the emulator differ.
include(${CMAKE_CURRENT_LIST_DIR}/LapermPtxScan.cmake)
string(REPLACE "|" ";" PTX_FILES "${PTX_FILES}")
string(REPLACE "|" ";" EMU_KERNELS "${EMU_KERNELS}")
string(REPLACE "|" ";" PTXAS_LOGS "${PTXAS_LOGS}")

function(json_string value out)
  string(REPLACE "\\" "\\\\" value "${value}")
  string(REPLACE "\"" "\\\"" value "${value}")
  set(${out} "\"${value}\"" PARENT_SCOPE)
endfunction()

set(all_entries "")
set(files_json "")
set(index 0)
foreach(ptx IN LISTS PTX_FILES)
  get_filename_component(file_name ${ptx} NAME)
  file(READ ${ptx} text)
  laperm_ptxas_report("${PTXAS_LOGS}" ${index} log)
  math(EXPR index "${index} + 1")
  laperm_ptx_entries("${text}" entries)
  set(kernels_json "")
  set(shared_json "")
  set(threads_json "")
  set(registers_json "")
  set(spill_json "")
  foreach(name IN LISTS entries)
    list(APPEND all_entries ${name})
    laperm_ptx_static_shared("${text}" ${name} bytes)
    laperm_ptx_max_threads("${text}" ${name} max_threads)
    if(kernels_json)
      string(APPEND kernels_json ", ")
      string(APPEND shared_json ", ")
      string(APPEND threads_json ", ")
      string(APPEND registers_json ", ")
      string(APPEND spill_json ", ")
    endif()
    string(APPEND kernels_json "\"${name}\"")
    string(APPEND shared_json "\"${name}\": ${bytes}")
    string(APPEND threads_json "\"${name}\": ${max_threads}")
    if(log)
      laperm_ptxas_usage("${log}" ${name} usage)
      if(usage_REGISTERS STREQUAL "")   # not in the report (LapermPtxLimits.cmake fails the build on it)
        set(usage_REGISTERS null)
        set(usage_SPILL null)
      endif()
      string(APPEND registers_json "\"${name}\": ${usage_REGISTERS}")
      string(APPEND spill_json "\"${name}\": ${usage_SPILL}")
    endif()
  endforeach()
  if(files_json)
    string(APPEND files_json ",\n")
  endif()
  set(assembled "")
  if(log)
    set(assembled ", \"registers\": { ${registers_json} }, \"spillStoreBytes\": { ${spill_json} }")
  endif()
  string(APPEND files_json "    { \"file\": \"${file_name}\", \"kernels\": [${kernels_json}], \"staticSharedBytes\": { ${shared_json} }, \"maxThreads\": { ${threads_json} }${assembled} }")
endforeach()

if(TOOL)
  list(SORT all_entries)
  list(SORT EMU_KERNELS)
  if(EMU_KERNELS AND NOT "${all_entries}" STREQUAL "${EMU_KERNELS}")
    message(FATAL_ERROR "PTX entry points (${all_entries}) differ from the kernels registered in the emulator (${EMU_KERNELS}): "
                        "every kernel must be declared as `extern \"C\" __global__ void name(` on one line")
  endif()
  set(available true)
  set(reason null)
  json_string("${TOOL}" compiler)
  json_string("${TOOL_VERSION}" compiler_version)
  json_string("sm_${ARCH}" arch)
  set(assembler null)
  if(PTXAS_LOGS)
    json_string("ptxas ${PTXAS_VERSION} for sm_${PTXAS_ARCH}" assembler)
  endif()
else()
  set(available false)
  json_string("${REASON}" reason)
  set(compiler null)
  set(compiler_version null)
  set(arch null)
  set(assembler null)
endif()

set(json "{\n  \"available\": ${available},\n  \"reason\": ${reason},\n  \"compiler\": ${compiler},\n  \"compilerVersion\": ${compiler_version},\n  \"arch\": ${arch},\n  \"assembler\": ${assembler},\n  \"files\": [\n${files_json}\n  ]\n}\n")
# Atomic: write a temporary file, then rename.
file(WRITE ${OUT}.tmp "${json}")
file(RENAME ${OUT}.tmp ${OUT})
