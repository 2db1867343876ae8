# ctest ptx_scan: LapermPtxScan.cmake's readings of PTX text and of ptxas's report, on
# hand-written samples of what clang and nvcc emit (cmake -P; no compiler needed).
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/LapermPtxScan.cmake)
set(failures 0)
macro(expect what actual expected)
  if(NOT "${actual}" STREQUAL "${expected}")
    message(SEND_ERROR "${what}: got '${actual}', expected '${expected}'")
    math(EXPR failures "${failures} + 1")
  endif()
endmacro()

set(ptx [=[
.version 7.5
.target sm_80
.address_size 64
.extern .shared .align 16 .b8 lp_dynamic_shared_bytes[];
	// _ZZ2k1E3buf has been demoted
.shared .align 4 .b8 _ZZ2k1E3buf[2048];
.shared .align 4 .u32 _ZZ2k1E8s_record;
.shared .align 4 .f32 _ZZ2k1E5s_map_$_0;
.shared .align 4 .f32 _ZZ2k1E5s_map_$_1;
.shared .align 8 .f64 _ZZ2k1E6totals[4];
	.shared .align 8 .v2 .f32 _ZZ2k1E5pairs[3];
.shared .align 4 .b8 _ZZ3k10E5other[512];

.visible .entry k1(
	.param .u64 k1_param_0
)
.maxntid 512, 1, 1
{
	.reg .b64 	%rd<3>;
	mov.u64 	%rd1, _ZZ2k1E3buf;
	cvta.shared.u64 	%rd2, _ZZ2k1E3buf;
	st.shared.u32 	[_ZZ2k1E8s_record], 0;
	ret;
}
.visible .entry k10(
	.param .u64 k10_param_0
)
{
	ret;
}
]=])
laperm_ptx_entries("${ptx}" entries)
expect("entries" "${entries}" "k1;k10")
laperm_ptx_static_shared("${ptx}" k1 bytes)
# 2048 + 4 + 2 * 4 + 4 * 8 + 3 * 2 * 4: the other kernel's array and the instructions not counted.
expect("static shared of k1" "${bytes}" "2116")
laperm_ptx_static_shared("${ptx}" k10 bytes)
expect("static shared of k10" "${bytes}" "512")
laperm_ptx_static_shared("${ptx}" k2 bytes)
expect("static shared of a kernel without any" "${bytes}" "0")
laperm_ptx_max_threads("${ptx}" k1 threads)
expect(".maxntid of k1" "${threads}" "512")
laperm_ptx_max_threads("${ptx}" k10 threads)
expect(".maxntid of k10 (none)" "${threads}" "0")

set(report [=[
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k10' for 'sm_90'
ptxas info    : Function properties for k10
    32 bytes stack frame, 56 bytes spill stores, 56 bytes spill loads
ptxas info    : Used 80 registers, 512 bytes smem, 380 bytes cmem[0]
ptxas info    : Function properties for _Z6helperPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'k1' for 'sm_90'
ptxas info    : Function properties for k1
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 17 registers
]=])
laperm_ptxas_usage("${report}" k10 usage)
expect("k10 registers" "${usage_REGISTERS}" "80")
expect("k10 smem" "${usage_SMEM}" "512")
expect("k10 spill stores" "${usage_SPILL}" "56")
laperm_ptxas_usage("${report}" k1 usage)
expect("k1 registers" "${usage_REGISTERS}" "17")
expect("k1 smem (none reported)" "${usage_SMEM}" "0")
expect("k1 spill stores" "${usage_SPILL}" "0")
laperm_ptxas_usage("${report}" k2 usage)
expect("k2 (not in the report)" "${usage_REGISTERS}" "")

if(failures GREATER 0)
  message(FATAL_ERROR "ptx_scan: ${failures} check(s) failed")
endif()
message(STATUS "ptx_scan: all checks passed")
