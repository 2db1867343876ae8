using LaPerm.Core.Backend;

namespace LaPerm.Core.Model;

/// <summary>Per-example activation shape (channels, height, width); dense features are (F, 1, 1).</summary>
public readonly record struct FeatureShape(int Channels, int Height, int Width)
{
    public int Length => Channels * Height * Width;
    public int Spatial => Height * Width;
    public override string ToString() => Height == 1 && Width == 1 ? $"{Channels}" : $"{Channels}x{Height}x{Width}";
}

/// <summary>
/// How a forward pass runs: training mode (batch statistics, dropout) and the run's dropout seed.
/// The step that selects the dropout masks is the backend's (<see cref="IBackend.BeginStep"/>), so
/// a captured forward pass draws new masks at every replayed step.
/// </summary>
public readonly record struct ForwardMode(bool Training, ulong Seed)
{
    public static ForwardMode Inference => new(false, 0);
}

/// <summary>What a layer node needs to bind itself to buffers of one batch size.</summary>
internal sealed class NodeContext(IBackend backend, int batch,
    IReadOnlyDictionary<string, Parameter> parameters, IReadOnlyDictionary<string, StateTensor> state)
{
    public IBackend Backend { get; } = backend;
    public int Batch { get; } = batch;
    public Parameter Parameter(string name) => parameters[name];
    public Tensor<float> State(string name) => state[name].Value;
}

/// <summary>
/// A layer of a compiled model: knows its input/output shapes and parameters, independent of
/// backend and batch size. <see cref="CreateNode"/> binds it to buffers for one batch size.
/// </summary>
public abstract class Layer
{
    /// <summary>
    /// For a window that does not fit a 1x1 input: " (its input is a vector of N values, e.g. a
    /// dense layer's output; windows need an image)", so "does not fit a 1x1 input" is not read as a bug.
    /// </summary>
    internal static string VectorNote(FeatureShape input, ArgumentException refusal) =>
        input is { Height: 1, Width: 1 } && refusal.Message.Contains("does not fit", StringComparison.Ordinal)
            ? $" (its input is a vector of {input.Channels} values, e.g. a dense layer's output; windows need an image)" : "";

    protected Layer(string name, FeatureShape input)
    {
        Name = name;
        Input = input;
    }

    public string Name { get; }
    public FeatureShape Input { get; }
    public abstract FeatureShape Output { get; }
    public virtual IReadOnlyList<ParameterInfo> Parameters => [];
    public virtual IReadOnlyList<StateInfo> State => [];

    /// <summary>
    /// Multiply-adds of one example's forward pass through a dense or convolution layer (padding
    /// counted, as is usual); other layers do little arithmetic and count 0.
    /// </summary>
    public virtual long ForwardMultiplyAdds => 0;

    /// <summary>Multiply-adds of one example's training step: forward, weight gradient, and the input gradient when it is computed (each as many as the forward pass).</summary>
    public virtual long TrainingMultiplyAdds(bool needInputGradient) => ForwardMultiplyAdds * (needInputGradient ? 3 : 2);

    /// <summary>A one-line description for `laperm models --verbose` and errors.</summary>
    public abstract string Describe();

    /// <param name="needInputGradient">False for the first layer: its input gradient is never used, so it is not computed.</param>
    internal abstract LayerNode CreateNode(NodeContext context, bool needInputGradient);
}

/// <summary>A layer bound to one batch size: owns its output and input-gradient buffers.</summary>
internal abstract class LayerNode : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    protected LayerNode(NodeContext context) => Context = context;

    protected NodeContext Context { get; }
    protected IBackend Backend => Context.Backend;
    protected int Batch => Context.Batch;

    public abstract Tensor<float> Forward(Tensor<float> x, ForwardMode mode);

    /// <summary>Returns the gradient with respect to the input, or null when the layer was told it is not needed.</summary>
    public abstract Tensor<float>? Backward(Tensor<float> dy);

    protected Tensor<T> Own<T>(Tensor<T> tensor) where T : unmanaged
    {
        _owned.Add(tensor);
        return tensor;
    }

    protected Tensor<float> AllocateActivation(FeatureShape shape) =>
        Own(Backend.Allocate<float>(new Shape(Batch, shape.Channels, shape.Height, shape.Width)));

    public virtual void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        _owned.Clear();
    }
}
