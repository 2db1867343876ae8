# Writes the emulator's table of static shared memory per kernel (cmake -P), parsed from the
# PTX: a __shared__ variable declared in a kernel's body is a module-level .shared symbol
# whose mangled name carries the kernel's name (_ZZ<len><kernel>E<len><var>).
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
    string(APPEND rows "    {\"${name}\", ${bytes}u},\n")
  endforeach()
endforeach()
file(WRITE ${OUT}.tmp "// Generated from the PTX by cuda/cmake/LapermStaticShared.cmake: do not edit.
#include \"emu_registry.h\"

namespace lp_emu {
const StaticSharedSize static_shared_sizes[] = {
${rows}    {nullptr, 0u},
};
}  // namespace lp_emu
")
file(RENAME ${OUT}.tmp ${OUT})
