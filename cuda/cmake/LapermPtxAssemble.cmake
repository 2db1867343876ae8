# Assembles one PTX file with ptxas for a real GPU architecture (cmake -P), as the driver does
# when it loads the module: a file ptxas rejects fails the build here instead of on the GPU.
# Keeps ptxas's -v report (registers, shared memory and spills per kernel) for
# LapermPtxLimits.cmake and LapermManifest.cmake. Inputs (-D): PTXAS, ARCH (90), PTX, OUT.
execute_process(COMMAND ${PTXAS} -arch=sm_${ARCH} -v ${PTX} -o ${OUT}.cubin
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(REMOVE ${OUT}.cubin)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ptxas (sm_${ARCH}) rejects ${PTX}, as a GPU's driver would when it loads it "
                      "(exit code ${rc}):\n${out}${err}")
endif()
# Warnings do not fail the build (another toolkit's ptxas may add its own), but are shown.
string(REGEX MATCHALL "[^\n]*[Ww]arning[^\n]*" warnings "${out}${err}")
foreach(w IN LISTS warnings)
  message(WARNING "${PTX}: ${w}")
endforeach()
# Atomic: a half-written report must not pass for a whole one.
file(WRITE ${OUT}.tmp "${out}${err}")
file(RENAME ${OUT}.tmp ${OUT})
