namespace LaPerm.Cuda.Backend;

/// <summary>How cuBLAS computes FP32 GEMMs (convolutions included) on <c>cuda</c>.</summary>
public enum GemmMath
{
    /// <summary>CUBLAS_PEDANTIC_MATH: strict FP32, no tensor-core shortcuts; comparable with the CPU (default).</summary>
    Pedantic,

    /// <summary>CUBLAS_TF32_TENSOR_OP_MATH: inputs rounded to TF32 on tensor cores; faster, about 1e-3 relative error.</summary>
    Tf32,
}

/// <summary>
/// Which op families cuDNN runs on <c>cuda</c> (and the emulator's stand-in for it on <c>emu</c>);
/// the rest, and every case cuDNN cannot express, runs on our kernels. cuDNN pads symmetrically,
/// so TensorFlow's asymmetric "same" padding at stride 2 runs on an explicitly padded copy of the
/// input; its batch-norm needs epsilon >= 0 (CUDNN_BN_MIN_EPSILON); a missing cuDNN library falls back as a whole.
/// </summary>
[Flags]
public enum CudnnScope
{
    /// <summary>Our kernels only (default until measurements on a GPU choose otherwise).</summary>
    None = 0,

    /// <summary>Convolution forward, backward data and backward filter (FMA math, no TF32).</summary>
    Convolution = 1,

    /// <summary>Max (deterministic backward), average and global average pooling.</summary>
    Pooling = 2,

    /// <summary>Spatial batch-norm, training and inference, forward and backward.</summary>
    BatchNorm = 4,

    All = Convolution | Pooling | BatchNorm,
}
