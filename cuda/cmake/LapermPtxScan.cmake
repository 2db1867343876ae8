# What a PTX file, and ptxas's report on it, fix for each kernel. Included by the cmake -P
# scripts LapermPtxLimits.cmake (the emulator's table) and LapermManifest.cmake (manifest.json),
# so both read the PTX one way; tested by cuda/emu/tests/ptx_scan_test.cmake.

# laperm_ptx_entries(<text> <out>): the .entry names, in file order.
function(laperm_ptx_entries text out)
  string(REGEX MATCHALL "\\.entry[ \t]+[A-Za-z_$][A-Za-z0-9_$]*" entries "${text}")
  list(TRANSFORM entries REPLACE "\\.entry[ \t]+" "")
  set(${out} "${entries}" PARENT_SCOPE)
endfunction()

# laperm_ptx_static_shared(<text> <kernel> <out>): bytes of the __shared__ variables declared in
# the kernel's body. They are module-level .shared symbols whose mangled name carries the
# kernel's (_ZZ<len><kernel>E<len><var>); each counts its element type's size times its
# dimensions: ".shared .align 4 .b8 _ZZ...E6buffer[4096];" is 4096 bytes, a scalar
# ".shared .align 4 .u32 _ZZ...E8s_record;" 4 (clang also splits a small array into scalars,
# s_map_$_0 .. s_map_$_5).
function(laperm_ptx_static_shared text kernel out)
  string(LENGTH "${kernel}" len)
  # A declaration starts its line (an instruction such as "cvta.shared.u64 %rd1, _ZZ..." does not).
  string(REGEX MATCHALL "\n[ \t]*\\.shared[^\n;]*[ \t]_ZZ${len}${kernel}E[^\n;]*" decls "${text}")
  set(bytes 0)
  foreach(d IN LISTS decls)
    if(NOT d MATCHES "[ \t]\\.[bsuf](8|16|32|64)[ \t]")
      message(FATAL_ERROR "a .shared declaration of ${kernel} without a scalar type: ${d}")
    endif()
    math(EXPR size "${CMAKE_MATCH_1} / 8")
    if(d MATCHES "[ \t]\\.v([24])[ \t]")
      math(EXPR size "${size} * ${CMAKE_MATCH_1}")
    endif()
    string(REGEX MATCHALL "\\[[0-9]+\\]" dims "${d}")
    foreach(dim IN LISTS dims)
      string(REGEX REPLACE "[][]" "" dim "${dim}")
      math(EXPR size "${size} * ${dim}")
    endforeach()
    math(EXPR bytes "${bytes} + ${size}")
  endforeach()
  set(${out} ${bytes} PARENT_SCOPE)
endfunction()

# laperm_ptx_max_threads(<text> <kernel> <out>): the most threads a block of the kernel may have,
# from ".maxntid X, Y, Z" (__launch_bounds__) between its parameter list and its body; 0 when
# it has none.
function(laperm_ptx_max_threads text kernel out)
  set(threads 0)
  string(REGEX MATCH "\\.entry[ \t]+${kernel}[ \t]*\\([^{]*" head "${text}")
  if(head MATCHES "\\.maxntid[ \t]+([0-9]+),[ \t]*([0-9]+),[ \t]*([0-9]+)")
    math(EXPR threads "${CMAKE_MATCH_1} * ${CMAKE_MATCH_2} * ${CMAKE_MATCH_3}")
  elseif(head MATCHES "\\.maxntid[ \t]+([0-9]+)[ \t\r\n]")
    set(threads ${CMAKE_MATCH_1})
  endif()
  set(${out} ${threads} PARENT_SCOPE)
endfunction()

# laperm_ptxas_report(<reports> <index> <out>): the text of the index-th ptxas report in the list
# (one per PTX file, in the same order); empty when the list is (the PTX was not assembled).
function(laperm_ptxas_report reports index out)
  set(text "")
  if(reports)
    list(GET reports ${index} file)
    file(READ ${file} text)
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# laperm_ptxas_usage(<log> <kernel> <prefix>): from `ptxas -v`'s report, the kernel's registers
# per thread, static shared bytes and spill stores, into <prefix>_REGISTERS, <prefix>_SMEM and
# <prefix>_SPILL (empty when the report does not name the kernel). A kernel's lines run from
# "Compiling entry function '<kernel>'" to the next such line; the first "Used N registers" and
# "N bytes spill stores" in them are its own (a callee's properties follow them).
function(laperm_ptxas_usage log kernel prefix)
  set(registers "")
  set(smem "")
  set(spill "")
  string(FIND "${log}" "Compiling entry function '${kernel}'" at)
  if(at GREATER_EQUAL 0)
    string(SUBSTRING "${log}" ${at} -1 rest)
    string(LENGTH "Compiling entry function" skip)
    string(SUBSTRING "${rest}" ${skip} -1 after)
    string(FIND "${after}" "Compiling entry function" next)
    if(next GREATER_EQUAL 0)
      string(SUBSTRING "${after}" 0 ${next} after)
    endif()
    if(after MATCHES "Used ([0-9]+) registers([^\n]*)")
      set(registers ${CMAKE_MATCH_1})
      set(smem 0)
      if(CMAKE_MATCH_2 MATCHES "([0-9]+) bytes smem")
        set(smem ${CMAKE_MATCH_1})
      endif()
    endif()
    if(after MATCHES "([0-9]+) bytes spill stores")
      set(spill ${CMAKE_MATCH_1})
    endif()
  endif()
  set(${prefix}_REGISTERS "${registers}" PARENT_SCOPE)
  set(${prefix}_SMEM "${smem}" PARENT_SCOPE)
  set(${prefix}_SPILL "${spill}" PARENT_SCOPE)
endfunction()
