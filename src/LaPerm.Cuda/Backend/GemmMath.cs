namespace LaPerm.Cuda.Backend;

/// <summary>How cuBLAS computes FP32 GEMMs (convolutions included) on <c>cuda</c>.</summary>
public enum GemmMath
{
    /// <summary>CUBLAS_PEDANTIC_MATH: strict FP32, no tensor-core shortcuts; comparable with the CPU (default).</summary>
    Pedantic,

    /// <summary>CUBLAS_TF32_TENSOR_OP_MATH: inputs rounded to TF32 on tensor cores; faster, about 1e-3 relative error.</summary>
    Tf32,
}

/// <summary>Which implementation runs convolutions on <c>cuda</c> (emu always runs our kernels).</summary>
public enum ConvolutionEngine
{
    /// <summary>Our kernels: im2col / col2im (im2col.cu, conv.cu) around one cuBLAS GEMM per group of images.</summary>
    Kernels,

    /// <summary>
    /// cuDNN (FMA math, no TF32) where it can run the geometry, our kernels otherwise: cuDNN pads
    /// symmetrically, so TensorFlow's asymmetric "same" padding at stride 2 stays on our kernels,
    /// and a missing cuDNN library falls back as a whole.
    /// </summary>
    Cudnn,
}
