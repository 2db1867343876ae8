using LaPerm.Core.Backend;

namespace LaPerm.Core.Model;

public sealed class DenseLayer : Layer
{
    private readonly ParameterInfo _kernel;
    private readonly ParameterInfo? _bias;

    public DenseLayer(string name, FeatureShape input, DenseSpec spec, bool inputLayer) : base(name, input)
    {
        if (spec.Units <= 0) throw new ModelSpecException($"layer '{name}': units must be positive, got {spec.Units}");
        CheckL2(name, spec.L2);
        Spec = spec;
        _kernel = new ParameterInfo($"{name}/kernel", ParameterKind.Kernel, new Shape(spec.Units, input.Length), input.Length, spec.L2, inputLayer);
        // Keras' he_uniform applied to a bias (the authors' bias_initializer): a 1-D tensor's fan-in is its length.
        _bias = spec.Bias ? new ParameterInfo($"{name}/bias", ParameterKind.Bias, new Shape(spec.Units), spec.Units, 0f, inputLayer) : null;
    }

    public DenseSpec Spec { get; }
    public override FeatureShape Output => new(Spec.Units, 1, 1);
    public override IReadOnlyList<ParameterInfo> Parameters => _bias is null ? [_kernel] : [_kernel, _bias];
    public override long ForwardMultiplyAdds => (long)Input.Length * Spec.Units;

    /// <summary>An L2 factor must be a finite number >= 0 (0: none).</summary>
    internal static void CheckL2(string name, float l2)
    {
        if (!(l2 >= 0f) || float.IsInfinity(l2)) throw new ModelSpecException($"layer '{name}': l2 must be a finite number >= 0, got {l2}");
    }

    public override string Describe() => $"dense {Input.Length}->{Spec.Units}{(Spec.Bias ? "" : " no-bias")}{(Spec.L2 > 0 ? $" l2={Spec.L2}" : "")}";

    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context, needInputGradient);

    private sealed class Node : LayerNode
    {
        private readonly DenseLayer _layer;
        private readonly Parameter _kernel;
        private readonly Parameter? _bias;
        private readonly bool _needInputGradient;
        private readonly Tensor<float> _y;
        private Tensor<float>? _dx;
        private Tensor<float>? _x;

        public Node(DenseLayer layer, NodeContext context, bool needInputGradient) : base(context)
        {
            _layer = layer;
            _kernel = context.Parameter(layer._kernel.Name);
            _bias = layer._bias is null ? null : context.Parameter(layer._bias.Name);
            _needInputGradient = needInputGradient;
            _y = AllocateActivation(layer.Output);
        }

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _x = x;
            int n = Batch, input = _layer.Input.Length, units = _layer.Spec.Units;
            // y[N, units] = x[N, in] . W[units, in]^T
            Backend.Gemm(false, true, n, units, input, 1f, x, _kernel.Value, 0f, _y);
            if (_bias is not null) Backend.AddBias(_y, _bias.Value, units);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            var x = _x ?? throw new InvalidOperationException($"{_layer.Name}: backward before forward");
            int n = Batch, input = _layer.Input.Length, units = _layer.Spec.Units;
            // dW[units, in] = dy[N, units]^T . x[N, in]
            Backend.Gemm(true, false, units, input, n, 1f, dy, x, 0f, _kernel.Gradient);
            if (_bias is not null) Backend.BiasGradient(dy, _bias.Gradient, units);
            if (!_needInputGradient) return null;
            _dx ??= AllocateActivation(_layer.Input);
            // dx[N, in] = dy[N, units] . W[units, in]
            Backend.Gemm(false, false, n, input, units, 1f, dy, _kernel.Value, 0f, _dx);
            return _dx;
        }
    }
}

public sealed class Conv2dLayer : Layer
{
    private readonly ParameterInfo _kernel;
    private readonly ParameterInfo? _bias;
    private readonly ConvGeometry _geometry;

    public Conv2dLayer(string name, FeatureShape input, Conv2dSpec spec, bool inputLayer) : base(name, input)
    {
        if (spec.Filters <= 0 || spec.Kernel <= 0 || spec.Stride <= 0)
            throw new ModelSpecException($"layer '{name}': filters, kernel and stride must be positive, got {spec.Filters}, {spec.Kernel} and {spec.Stride}");
        DenseLayer.CheckL2(name, spec.L2);
        bool same = spec.Padding switch
        {
            "same" => true,
            "valid" => false,
            _ => throw new ModelSpecException($"layer '{name}': padding must be \"same\" or \"valid\", got \"{spec.Padding}\""),
        };
        Spec = spec;
        try
        {
            _geometry = ConvGeometry.Create(1, input.Channels, input.Height, input.Width, spec.Filters, spec.Kernel, spec.Kernel, spec.Stride, same);
        }
        catch (ArgumentException e)
        {
            throw new ModelSpecException($"layer '{name}': {e.Message}{Layer.VectorNote(input, e)}");
        }
        int fanIn = input.Channels * spec.Kernel * spec.Kernel;
        _kernel = new ParameterInfo($"{name}/kernel", ParameterKind.Kernel, new Shape(spec.Filters, input.Channels, spec.Kernel, spec.Kernel), fanIn, spec.L2, inputLayer);
        _bias = spec.Bias ? new ParameterInfo($"{name}/bias", ParameterKind.Bias, new Shape(spec.Filters), spec.Filters, 0f, inputLayer) : null;   // see DenseLayer
    }

    public Conv2dSpec Spec { get; }
    public override FeatureShape Output => new(Spec.Filters, _geometry.OutHeight, _geometry.OutWidth);
    public override IReadOnlyList<ParameterInfo> Parameters => _bias is null ? [_kernel] : [_kernel, _bias];
    public override long ForwardMultiplyAdds => (long)Output.Length * Input.Channels * Spec.Kernel * Spec.Kernel;
    public override string Describe() =>
        $"conv {Spec.Kernel}x{Spec.Kernel}x{Input.Channels}->{Spec.Filters} stride {Spec.Stride} {Spec.Padding} -> {Output}{(Spec.L2 > 0 ? $" l2={Spec.L2}" : "")}";

    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context, needInputGradient);

    private sealed class Node : LayerNode
    {
        private readonly Conv2dLayer _layer;
        private readonly ConvGeometry _g;
        private readonly Parameter _kernel;
        private readonly Parameter? _bias;
        private readonly bool _needInputGradient;
        private readonly Tensor<float> _y;
        private Tensor<float>? _dx;
        private Tensor<float>? _x;

        public Node(Conv2dLayer layer, NodeContext context, bool needInputGradient) : base(context)
        {
            _layer = layer;
            _g = layer._geometry.WithBatch(context.Batch);
            _kernel = context.Parameter(layer._kernel.Name);
            _bias = layer._bias is null ? null : context.Parameter(layer._bias.Name);
            _needInputGradient = needInputGradient;
            _y = AllocateActivation(layer.Output);
        }

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _x = x;
            Backend.ConvForward(_g, x, _kernel.Value, _y);
            if (_bias is not null) Backend.AddBias(_y, _bias.Value, _g.OutChannels);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            var x = _x ?? throw new InvalidOperationException($"{_layer.Name}: backward before forward");
            Backend.ConvBackwardFilter(_g, x, dy, _kernel.Gradient);
            if (_bias is not null) Backend.BiasGradient(dy, _bias.Gradient, _g.OutChannels);
            if (!_needInputGradient) return null;
            _dx ??= AllocateActivation(_layer.Input);
            Backend.ConvBackwardData(_g, dy, _kernel.Value, _dx);
            return _dx;
        }
    }
}

public sealed class PoolLayer : Layer
{
    private readonly PoolGeometry _geometry;

    public PoolLayer(string name, FeatureShape input, bool max, int window, int stride) : base(name, input)
    {
        IsMax = max;
        try
        {
            _geometry = PoolGeometry.Create(1, input.Channels, input.Height, input.Width, window, stride);
        }
        catch (ArgumentException e)
        {
            throw new ModelSpecException($"layer '{name}': {e.Message}{Layer.VectorNote(input, e)}");
        }
    }

    public bool IsMax { get; }
    public override FeatureShape Output => new(Input.Channels, _geometry.OutHeight, _geometry.OutWidth);
    public override string Describe() => $"{(IsMax ? "maxpool" : "avgpool")} {_geometry.Window}/{_geometry.Stride} -> {Output}";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    private sealed class Node : LayerNode
    {
        private readonly PoolLayer _layer;
        private readonly PoolGeometry _g;
        private readonly Tensor<float> _y;
        private readonly Tensor<int>? _argmax;
        private Tensor<float>? _dx;
        private Tensor<float>? _x;

        public Node(PoolLayer layer, NodeContext context) : base(context)
        {
            _layer = layer;
            _g = layer._geometry.WithBatch(context.Batch);
            _y = AllocateActivation(layer.Output);
            if (layer.IsMax) _argmax = Own(Backend.Allocate<int>(_y.Shape));
        }

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _x = x;
            if (_argmax is not null) Backend.MaxPoolForward(_g, x, _y, _argmax);
            else Backend.AvgPoolForward(_g, x, _y);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            _dx ??= AllocateActivation(_layer.Input);
            if (_argmax is not null)
            {
                var x = _x ?? throw new InvalidOperationException($"{_layer.Name}: backward before forward");
                Backend.MaxPoolBackward(_g, x, _y, dy, _argmax, _dx);
            }
            else Backend.AvgPoolBackward(_g, dy, _dx);
            return _dx;
        }
    }
}

public sealed class GlobalAvgPoolLayer(string name, FeatureShape input) : Layer(name, input)
{
    public override FeatureShape Output => new(Input.Channels, 1, 1);
    public override string Describe() => $"global average pool -> {Output}";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    private sealed class Node(GlobalAvgPoolLayer layer, NodeContext context) : LayerNode(context)
    {
        private Tensor<float>? _y;
        private Tensor<float>? _dx;

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _y ??= AllocateActivation(layer.Output);
            Backend.GlobalAvgPoolForward(Batch, layer.Input.Channels, layer.Input.Spatial, x, _y);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            _dx ??= AllocateActivation(layer.Input);
            Backend.GlobalAvgPoolBackward(Batch, layer.Input.Channels, layer.Input.Spatial, dy, _dx);
            return _dx;
        }
    }
}

public sealed class BatchNormLayer : Layer
{
    private readonly ParameterInfo _gamma;
    private readonly ParameterInfo _beta;
    private readonly StateInfo _mean;
    private readonly StateInfo _variance;

    public BatchNormLayer(string name, FeatureShape input, BatchNormSpec spec) : base(name, input)
    {
        if (spec.Momentum is < 0f or >= 1f) throw new ModelSpecException($"layer '{name}': momentum must be in [0, 1), got {spec.Momentum}");
        if (!(spec.Epsilon > 0f)) throw new ModelSpecException($"layer '{name}': epsilon must be positive, got {spec.Epsilon}");
        Spec = spec;
        var shape = new Shape(input.Channels);
        _gamma = new ParameterInfo($"{name}/gamma", ParameterKind.BatchNorm, shape, input.Channels, 0f, false);
        _beta = new ParameterInfo($"{name}/beta", ParameterKind.BatchNorm, shape, input.Channels, 0f, false);
        _mean = new StateInfo($"{name}/moving_mean", input.Channels, 0f);
        _variance = new StateInfo($"{name}/moving_variance", input.Channels, 1f);
    }

    public BatchNormSpec Spec { get; }
    public override FeatureShape Output => Input;
    public override IReadOnlyList<ParameterInfo> Parameters => [_gamma, _beta];
    public override IReadOnlyList<StateInfo> State => [_mean, _variance];
    public override string Describe() => $"batchnorm {Input.Channels} channels";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    private sealed class Node : LayerNode
    {
        private readonly BatchNormLayer _layer;
        private readonly Parameter _gamma, _beta;
        private readonly Tensor<float> _runningMean, _runningVariance, _savedMean, _savedInvStd, _y;
        private Tensor<float>? _dx;
        private Tensor<float>? _x;

        public Node(BatchNormLayer layer, NodeContext context) : base(context)
        {
            _layer = layer;
            _gamma = context.Parameter(layer._gamma.Name);
            _beta = context.Parameter(layer._beta.Name);
            _runningMean = context.State(layer._mean.Name);
            _runningVariance = context.State(layer._variance.Name);
            _savedMean = Own(Backend.Allocate<float>(new Shape(layer.Input.Channels)));
            _savedInvStd = Own(Backend.Allocate<float>(new Shape(layer.Input.Channels)));
            _y = AllocateActivation(layer.Output);
        }

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _x = x;
            var s = _layer.Spec;
            int c = _layer.Input.Channels, spatial = _layer.Input.Spatial;
            if (mode.Training)
                Backend.BatchNormForwardTraining(Batch, c, spatial, s.Epsilon, s.Momentum, x, _gamma.Value, _beta.Value,
                    _runningMean, _runningVariance, _savedMean, _savedInvStd, _y);
            else
                Backend.BatchNormForwardInference(Batch, c, spatial, s.Epsilon, x, _gamma.Value, _beta.Value, _runningMean, _runningVariance, _y);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            var x = _x ?? throw new InvalidOperationException($"{_layer.Name}: backward before forward");
            _dx ??= AllocateActivation(_layer.Input);
            Backend.BatchNormBackward(Batch, _layer.Input.Channels, _layer.Input.Spatial, _layer.Spec.Epsilon, x, dy, _gamma.Value,
                _savedMean, _savedInvStd, _dx, _gamma.Gradient, _beta.Gradient);
            return _dx;
        }
    }
}

public sealed class DropoutLayer : Layer
{
    public DropoutLayer(string name, FeatureShape input, DropoutSpec spec, int ordinal) : base(name, input)
    {
        if (spec.Rate is < 0f or >= 1f) throw new ModelSpecException($"layer '{name}': dropout rate must be in [0, 1), got {spec.Rate}");
        Rate = spec.Rate;
        Ordinal = ordinal;
    }

    public float Rate { get; }

    /// <summary>Distinguishes this layer's dropout stream from the other dropout layers'.</summary>
    public int Ordinal { get; }
    public override FeatureShape Output => Input;
    public override string Describe() => $"dropout {Rate}";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    private sealed class Node(DropoutLayer layer, NodeContext context) : LayerNode(context)
    {
        private Tensor<float>? _y, _dx;
        private Tensor<byte>? _mask;
        private bool _dropped;

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _dropped = mode.Training && layer.Rate > 0f;
            if (!_dropped) return x;
            _y ??= AllocateActivation(layer.Output);
            _mask ??= Own(Backend.Allocate<byte>(_y.Shape));
            ulong seed = DropoutRandom.Mix(mode.Seed + 0x5EED_0000UL + (ulong)layer.Ordinal);
            Backend.DropoutForward(layer.Rate, seed, x, _y, _mask);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            if (!_dropped) return dy;
            _dx ??= AllocateActivation(layer.Input);
            Backend.DropoutBackward(layer.Rate, dy, _mask!, _dx);
            return _dx;
        }
    }
}

public sealed class ReluLayer(string name, FeatureShape input) : Layer(name, input)
{
    public override FeatureShape Output => Input;
    public override string Describe() => "relu";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    private sealed class Node(ReluLayer layer, NodeContext context) : LayerNode(context)
    {
        private Tensor<float>? _y, _dx;

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            _y ??= AllocateActivation(layer.Output);
            Backend.ReluForward(x, _y);
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            _dx ??= AllocateActivation(layer.Input);
            Backend.ReluBackward(_y!, dy, _dx);
            return _dx;
        }
    }
}

public sealed class FlattenLayer(string name, FeatureShape input) : Layer(name, input)
{
    public override FeatureShape Output => new(Input.Length, 1, 1);
    public override string Describe() => $"flatten -> {Output}";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    /// <summary>
    /// NCHW is already [N, C*H*W] in memory, so flatten passes tensors through; the gradient goes
    /// back under the input's shape (a view), since the layer before may read channels on axis 1
    /// (a convolution's bias, batch-norm).
    /// </summary>
    private sealed class Node(FlattenLayer layer, NodeContext context) : LayerNode(context)
    {
        private Tensor<float>? _dy, _dx;

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode) => x;

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            if (!ReferenceEquals(dy, _dy))
            {
                _dx?.Dispose();
                _dx = Backend.Reshape(dy, new Shape(Batch, layer.Input.Channels, layer.Input.Height, layer.Input.Width));
                _dy = dy;
            }
            return _dx;
        }

        public override void Dispose()
        {
            _dx?.Dispose();
            _dx = null;
            base.Dispose();
        }
    }
}

/// <summary>y = main(x) + shortcut(x) (identity shortcut when empty), as in Keras' CIFAR ResNet v1.</summary>
public sealed class ResidualLayer : Layer
{
    public ResidualLayer(string name, FeatureShape input, IReadOnlyList<Layer> main, IReadOnlyList<Layer> shortcut) : base(name, input)
    {
        if (main.Count == 0) throw new ModelSpecException($"layer '{name}': the main path is empty");
        Main = main;
        Shortcut = shortcut;
        var mainOut = main[^1].Output;
        var shortOut = shortcut.Count == 0 ? input : shortcut[^1].Output;
        if (mainOut != shortOut)
            throw new ModelSpecException($"layer '{name}': main path gives {mainOut} but the shortcut gives {shortOut}; they must match to be added");
    }

    public IReadOnlyList<Layer> Main { get; }
    public IReadOnlyList<Layer> Shortcut { get; }
    public override FeatureShape Output => Main[^1].Output;
    public override IReadOnlyList<ParameterInfo> Parameters => [.. Main.Concat(Shortcut).SelectMany(l => l.Parameters)];
    public override IReadOnlyList<StateInfo> State => [.. Main.Concat(Shortcut).SelectMany(l => l.State)];
    public override long ForwardMultiplyAdds => Main.Concat(Shortcut).Sum(l => l.ForwardMultiplyAdds);
    // Inside a block every layer's input gradient is computed (see Node).
    public override long TrainingMultiplyAdds(bool needInputGradient) => Main.Concat(Shortcut).Sum(l => l.TrainingMultiplyAdds(true));
    // Inner layers by name too: their tensors ("conv2/kernel") are what trace --layer and the metrics name.
    public override string Describe() => $"residual [{string.Join(", ", Main.Select(l => $"{l.Name}: {l.Describe()}"))}] + [{(Shortcut.Count == 0 ? "identity" : string.Join(", ", Shortcut.Select(l => $"{l.Name}: {l.Describe()}")))}]";
    internal override LayerNode CreateNode(NodeContext context, bool needInputGradient) => new Node(this, context);

    private sealed class Node : LayerNode
    {
        private readonly ResidualLayer _layer;
        private readonly LayerNode[] _main, _shortcut;
        private readonly Tensor<float> _y;
        private Tensor<float>? _dx;

        public Node(ResidualLayer layer, NodeContext context) : base(context)
        {
            _layer = layer;
            _main = [.. layer.Main.Select(l => l.CreateNode(context, true))];
            _shortcut = [.. layer.Shortcut.Select(l => l.CreateNode(context, true))];
            _y = AllocateActivation(layer.Output);
        }

        public override Tensor<float> Forward(Tensor<float> x, ForwardMode mode)
        {
            var main = x;
            foreach (var n in _main) main = n.Forward(main, mode);
            var shortcut = x;
            foreach (var n in _shortcut) shortcut = n.Forward(shortcut, mode);
            Backend.Copy(main, _y);
            Backend.ScaleAdd(1f, shortcut, _y); // y = shortcut + 1 * main
            return _y;
        }

        public override Tensor<float>? Backward(Tensor<float> dy)
        {
            Tensor<float> dMain = dy;
            for (int i = _main.Length - 1; i >= 0; i--) dMain = _main[i].Backward(dMain)!;
            Tensor<float> dShortcut = dy;
            for (int i = _shortcut.Length - 1; i >= 0; i--) dShortcut = _shortcut[i].Backward(dShortcut)!;
            _dx ??= AllocateActivation(_layer.Input);
            Backend.Copy(dMain, _dx);
            Backend.ScaleAdd(1f, dShortcut, _dx);
            return _dx;
        }

        public override void Dispose()
        {
            foreach (var n in _main.Concat(_shortcut)) n.Dispose();
            base.Dispose();
        }
    }
}

/// <summary>A model description that cannot be built (bad layer arguments, shapes that do not fit).</summary>
public sealed class ModelSpecException(string message) : Exception(message);
