# Writes ptx/manifest.json (cmake -P). Inputs (-D): PTX_FILES and EMU_KERNELS ("|"-separated),
# TOOL, TOOL_VERSION, ARCH, REASON, OUT.
#
# {
#   "available": true,                  false when no PTX compiler was found
#   "reason": null,                     or one sentence saying why PTX is unavailable
#   "compiler": "clang", "compilerVersion": "Debian clang version 14.0.6", "arch": "sm_80",
#   "files": [ { "file": "axpy.ptx", "kernels": ["axpy_v1", "axpy_v2"],
#                "staticSharedBytes": { "axpy_v1": 0, ... } }, ... ]
# }
# staticSharedBytes counts the __shared__ variables declared inside each kernel's body
# (function-local statics carry the kernel's name in their mangled PTX name).
# Fails if the PTX entry points and the kernels registered in the emulator differ.
string(REPLACE "|" ";" PTX_FILES "${PTX_FILES}")
string(REPLACE "|" ";" EMU_KERNELS "${EMU_KERNELS}")

function(json_string value out)
  string(REPLACE "\\" "\\\\" value "${value}")
  string(REPLACE "\"" "\\\"" value "${value}")
  set(${out} "\"${value}\"" PARENT_SCOPE)
endfunction()

set(all_entries "")
set(files_json "")
foreach(ptx IN LISTS PTX_FILES)
  get_filename_component(file_name ${ptx} NAME)
  file(READ ${ptx} text)
  string(REGEX MATCHALL "\\.entry[ \t]+[A-Za-z_$][A-Za-z0-9_$]*" entries "${text}")
  string(REGEX MATCHALL "\\.shared[^\n;]*_ZZ[0-9]+[A-Za-z_][A-Za-z0-9_]*E[A-Za-z0-9_]*\\[[0-9]+\\]" shared_decls "${text}")
  set(kernels_json "")
  set(shared_json "")
  foreach(e IN LISTS entries)
    string(REGEX REPLACE "\\.entry[ \t]+" "" name "${e}")
    list(APPEND all_entries ${name})
    string(LENGTH "${name}" len)
    set(bytes 0)
    foreach(d IN LISTS shared_decls)
      if(d MATCHES "_ZZ${len}${name}E[A-Za-z0-9_]*\\[([0-9]+)\\]")
        math(EXPR bytes "${bytes} + ${CMAKE_MATCH_1}")
      endif()
    endforeach()
    if(kernels_json)
      string(APPEND kernels_json ", ")
      string(APPEND shared_json ", ")
    endif()
    string(APPEND kernels_json "\"${name}\"")
    string(APPEND shared_json "\"${name}\": ${bytes}")
  endforeach()
  if(files_json)
    string(APPEND files_json ",\n")
  endif()
  string(APPEND files_json "    { \"file\": \"${file_name}\", \"kernels\": [${kernels_json}], \"staticSharedBytes\": { ${shared_json} } }")
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
else()
  set(available false)
  json_string("${REASON}" reason)
  set(compiler null)
  set(compiler_version null)
  set(arch null)
endif()

set(json "{\n  \"available\": ${available},\n  \"reason\": ${reason},\n  \"compiler\": ${compiler},\n  \"compilerVersion\": ${compiler_version},\n  \"arch\": ${arch},\n  \"files\": [\n${files_json}\n  ]\n}\n")
# Atomic: write a temporary file, then rename.
file(WRITE ${OUT}.tmp "${json}")
file(RENAME ${OUT}.tmp ${OUT})
