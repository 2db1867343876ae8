# Writes the emulator's table of what the PTX fixes per kernel (cmake -P):
#  - static shared memory: a __shared__ variable declared in a kernel's body is a module-level
#    .shared symbol whose mangled name carries the kernel's name (_ZZ<len><kernel>E<len><var>);
#  - the most threads a block may have: .maxntid X, Y, Z (from __launch_bounds__) between the
#    entry's parameter list and its body; 0 when the kernel has none.
# A GPU refuses a launch over either; the emulator refuses it the same way.
# Inputs (-D): PTX_FILES ("|"-separated, may be empty), OUT.
string(REPLACE "|" ";" PTX_FILES "${PTX_FILES}")
set(rows "")
foreach(ptx IN LISTS PTX_FILES)
  file(READ ${ptx} text)
  string(REGEX MATCHALL "\\.entry[ \t]+[A-Za-z_$][A-Za-z0-9_$]*" entries "${text}")
  string(REGEX MATCHALL "\\.shared[^\n;]*_ZZ[0-9]+[A-Za-z_][A-Za-z0-9_]*E[A-Za-z0-9_]*\\[[0-9]+\\]" decls "${text}")
  foreach(e IN LISTS entries)
    string(REGEX REPLACE "\\.entry[ \t]+" "" name "${e}")
    string(LENGTH "${name}" len)
    set(bytes 0)
    foreach(d IN LISTS decls)
      if(d MATCHES "_ZZ${len}${name}E[A-Za-z0-9_]*\\[([0-9]+)\\]")
        math(EXPR bytes "${bytes} + ${CMAKE_MATCH_1}")
      endif()
    endforeach()
    # The directives between ".entry name(...)" and the body's "{".
    set(max_threads 0)
    string(FIND "${text}" "${e}(" at)
    string(SUBSTRING "${text}" ${at} -1 rest)
    string(FIND "${rest}" "{" body)
    string(SUBSTRING "${rest}" 0 ${body} head)
    if(head MATCHES "\\.maxntid[ \t]+([0-9]+),[ \t]*([0-9]+),[ \t]*([0-9]+)")
      math(EXPR max_threads "${CMAKE_MATCH_1} * ${CMAKE_MATCH_2} * ${CMAKE_MATCH_3}")
    endif()
    string(APPEND rows "    {\"${name}\", ${bytes}u, ${max_threads}u},\n")
  endforeach()
endforeach()
file(WRITE ${OUT}.tmp "// Generated from the PTX by cuda/cmake/LapermPtxLimits.cmake: do not edit.
#include \"emu_registry.h\"

namespace lp_emu {
const PtxKernelLimits ptx_kernel_limits[] = {
${rows}    {nullptr, 0u, 0u},
};
}  // namespace lp_emu
")
file(RENAME ${OUT}.tmp ${OUT})
