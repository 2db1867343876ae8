# Writes the emulator's table of what the PTX fixes per kernel (cmake -P):
#  - static shared memory: the __shared__ variables declared in its body (LapermPtxScan.cmake);
#  - the most threads a block may have: .maxntid (from __launch_bounds__); 0 when it has none;
#  - registers per thread, from ptxas's report when the build assembled the PTX (0: unknown).
# A GPU refuses a launch over any of them; the emulator refuses it the same way. Where ptxas
# reported, its static shared bytes must equal the PTX reading: a parser that misreads a
# declaration fails the build rather than letting the emulator allow what a GPU refuses.
# Inputs (-D): PTX_FILES ("|"-separated, may be empty), PTXAS_LOGS (one per PTX file, same
# order, or empty), OUT.
include(${CMAKE_CURRENT_LIST_DIR}/LapermPtxScan.cmake)
string(REPLACE "|" ";" PTX_FILES "${PTX_FILES}")
string(REPLACE "|" ";" PTXAS_LOGS "${PTXAS_LOGS}")
set(rows "")
set(index 0)
foreach(ptx IN LISTS PTX_FILES)
  file(READ ${ptx} text)
  laperm_ptxas_report("${PTXAS_LOGS}" ${index} log)
  math(EXPR index "${index} + 1")
  laperm_ptx_entries("${text}" entries)
  foreach(name IN LISTS entries)
    laperm_ptx_static_shared("${text}" ${name} bytes)
    laperm_ptx_max_threads("${text}" ${name} max_threads)
    set(registers 0)
    if(log)
      laperm_ptxas_usage("${log}" ${name} usage)
      if(usage_REGISTERS STREQUAL "")
        message(FATAL_ERROR "ptxas's report on ${ptx} does not name the kernel ${name}")
      endif()
      if(NOT usage_SMEM EQUAL bytes)
        message(FATAL_ERROR "${name}: ptxas allocates ${usage_SMEM} bytes of static shared memory, the PTX reading "
                            "(LapermPtxScan.cmake) counts ${bytes}: the reading misses a declaration")
      endif()
      set(registers ${usage_REGISTERS})
    endif()
    string(APPEND rows "    {\"${name}\", ${bytes}u, ${max_threads}u, ${registers}u},\n")
  endforeach()
endforeach()
file(WRITE ${OUT}.tmp "// Generated from the PTX by cuda/cmake/LapermPtxLimits.cmake: do not edit.
#include \"emu_registry.h\"

namespace lp_emu {
const PtxKernelLimits ptx_kernel_limits[] = {
${rows}    {nullptr, 0u, 0u, 0u},
};
}  // namespace lp_emu
")
file(RENAME ${OUT}.tmp ${OUT})
