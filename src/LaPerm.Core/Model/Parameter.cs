using LaPerm.Core.Backend;

namespace LaPerm.Core.Model;

/// <summary>What a parameter is, which decides its init, its pruning and the LaPerm skip flags.</summary>
public enum ParameterKind
{
    Kernel,
    Bias,
    /// <summary>Batch-norm gamma or beta.</summary>
    BatchNorm,
}

/// <summary>
/// A trainable tensor's description, independent of any backend.
/// Kernels are [out, ...] so each output neuron/filter is one contiguous LaPerm row;
/// 1-D tensors are a single row.
/// </summary>
public sealed record ParameterInfo(string Name, ParameterKind Kind, Shape Shape, int FanIn, float L2, bool InInputLayer)
{
    public int Rows => Kind == ParameterKind.Kernel ? Shape[0] : 1;
    public int RowLength => Shape.Length / Rows;
}

/// <summary>Non-trainable per-layer state saved with the weights (batch-norm running statistics).</summary>
public sealed record StateInfo(string Name, int Length, float InitialValue);

/// <summary>A parameter bound to a backend: its values and the gradient buffer the backward pass fills.</summary>
public sealed class Parameter : IDisposable
{
    internal Parameter(ParameterInfo info, IBackend backend)
    {
        Info = info;
        Value = backend.Allocate<float>(info.Shape);
        Gradient = backend.Allocate<float>(info.Shape);
    }

    public ParameterInfo Info { get; }
    public string Name => Info.Name;
    public Tensor<float> Value { get; }
    public Tensor<float> Gradient { get; }

    public void Dispose()
    {
        Value.Dispose();
        Gradient.Dispose();
    }
}

/// <summary>A state tensor bound to a backend.</summary>
public sealed class StateTensor(StateInfo info, Tensor<float> value) : IDisposable
{
    public StateInfo Info { get; } = info;
    public string Name => Info.Name;
    public Tensor<float> Value { get; } = value;
    public void Dispose() => Value.Dispose();
}
