namespace LaPerm.Cuda.Backend;

/// <summary>How cuBLAS computes FP32 GEMMs (convolutions included) on <c>cuda</c>.</summary>
public enum GemmMath
{
    /// <summary>CUBLAS_PEDANTIC_MATH: strict FP32, no tensor-core shortcuts; comparable with the CPU (default).</summary>
    Pedantic,

    /// <summary>CUBLAS_TF32_TENSOR_OP_MATH: inputs rounded to TF32 on tensor cores; faster, about 1e-3 relative error.</summary>
    Tf32,
}
