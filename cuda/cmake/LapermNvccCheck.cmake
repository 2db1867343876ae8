# ctest ptx_nvcc_<file> (cmake -P): one kernel file compiled by nvcc as a CUDA toolkit's user
# builds it (the build's own nvcc flags), beside the PTX the build made with clang from the same
# file: the same entry points and the same static shared memory per kernel; and, where ptxas is
# found, nvcc's PTX assembled for sm_<ARCH> with ptxas's shared memory equal to that reading.
# Inputs (-D): NVCC, CCBIN (host compiler for nvcc, may be empty), FLAGS ("|"-separated), INCLUDE,
# SOURCE, REFERENCE (clang's PTX of SOURCE), PTXAS (may be empty), ARCH, OUT (nvcc's PTX).
include(${CMAKE_CURRENT_LIST_DIR}/LapermPtxScan.cmake)
string(REPLACE "|" ";" FLAGS "${FLAGS}")
get_filename_component(out_dir ${OUT} DIRECTORY)
file(MAKE_DIRECTORY ${out_dir})
set(ccbin "")
if(CCBIN)
  set(ccbin -ccbin ${CCBIN})
endif()
execute_process(COMMAND ${NVCC} ${ccbin} ${FLAGS} -I${INCLUDE} ${SOURCE} -o ${OUT}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nvcc fails on ${SOURCE} (exit code ${rc}):\n${out}${err}")
endif()

file(READ ${OUT} nvcc_ptx)
file(READ ${REFERENCE} clang_ptx)
laperm_ptx_entries("${nvcc_ptx}" nvcc_entries)
laperm_ptx_entries("${clang_ptx}" clang_entries)
list(SORT nvcc_entries)
list(SORT clang_entries)
if(NOT nvcc_entries STREQUAL clang_entries)
  message(FATAL_ERROR "${SOURCE}: nvcc's entry points (${nvcc_entries}) differ from clang's (${clang_entries})")
endif()

set(report "")
if(PTXAS)
  execute_process(COMMAND ${PTXAS} -arch=sm_${ARCH} -v ${OUT} -o ${OUT}.cubin
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  file(REMOVE ${OUT}.cubin)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ptxas (sm_${ARCH}) rejects nvcc's PTX of ${SOURCE} (exit code ${rc}):\n${out}${err}")
  endif()
  set(report "${out}${err}")
endif()

foreach(kernel IN LISTS nvcc_entries)
  laperm_ptx_static_shared("${nvcc_ptx}" ${kernel} nvcc_bytes)
  laperm_ptx_static_shared("${clang_ptx}" ${kernel} clang_bytes)
  if(NOT nvcc_bytes EQUAL clang_bytes)
    message(FATAL_ERROR "${kernel}: ${nvcc_bytes} bytes of static shared memory in nvcc's PTX, ${clang_bytes} in clang's")
  endif()
  set(line "${kernel}: ${nvcc_bytes} B static shared")
  if(report)
    laperm_ptxas_usage("${report}" ${kernel} usage)
    if(NOT usage_SMEM EQUAL nvcc_bytes)
      message(FATAL_ERROR "${kernel}: ptxas allocates ${usage_SMEM} bytes of static shared memory for nvcc's PTX, the reading counts ${nvcc_bytes}")
    endif()
    string(APPEND line ", ${usage_REGISTERS} registers, ${usage_SPILL} B spilled (sm_${ARCH})")
  endif()
  message(STATUS "${line}")
endforeach()
