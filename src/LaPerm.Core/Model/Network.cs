using LaPerm.Core.Backend;

namespace LaPerm.Core.Model;

/// <summary>
/// A model bound to a backend: its parameters, gradients and state tensors (allocated once),
/// and one <see cref="Pass"/> per batch size (activation and gradient buffers allocated once).
/// </summary>
public sealed class Network : IDisposable
{
    private readonly Dictionary<string, Parameter> _parameters;
    private readonly Dictionary<string, StateTensor> _state;
    private readonly Dictionary<int, Pass> _passes = [];

    public Network(ModelDefinition definition, IBackend backend)
    {
        Definition = definition;
        Backend = backend;
        Parameters = [.. definition.Parameters.Select(p => new Parameter(p, backend))];
        State = [.. definition.State.Select(s => new StateTensor(s, backend.Allocate<float>(new Shape(s.Length))))];
        _parameters = Parameters.ToDictionary(p => p.Name);
        _state = State.ToDictionary(s => s.Name);
        foreach (var s in State)
            if (s.Info.InitialValue != 0f) backend.Fill(s.Value, s.Info.InitialValue);
    }

    public ModelDefinition Definition { get; }
    public IBackend Backend { get; }
    public IReadOnlyList<Parameter> Parameters { get; }
    public IReadOnlyList<StateTensor> State { get; }

    /// <summary>Every tensor that a checkpoint holds (parameters, then state), by name.</summary>
    public IEnumerable<(string Name, Shape Shape, Tensor<float> Tensor)> CheckpointTensors() =>
        Parameters.Select(p => (p.Name, p.Info.Shape, p.Value)).Concat(State.Select(s => (s.Name, s.Value.Shape, s.Value)));

    /// <summary>The buffers for one batch size, created on first use and kept.</summary>
    public Pass GetPass(int batch)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), $"batch must be positive, got {batch}");
        if (!_passes.TryGetValue(batch, out var pass))
            _passes[batch] = pass = new Pass(this, batch);
        return pass;
    }

    public void Dispose()
    {
        foreach (var p in _passes.Values) p.Dispose();
        _passes.Clear();
        foreach (var p in Parameters) p.Dispose();
        foreach (var s in State) s.Dispose();
    }

    /// <summary>Forward, loss and backward for one batch size.</summary>
    public sealed class Pass : IDisposable
    {
        private readonly Network _network;
        private readonly LayerNode[] _nodes;
        private Tensor<float>? _logits;

        internal Pass(Network network, int batch)
        {
            _network = network;
            Batch = batch;
            var backend = network.Backend;
            var input = network.Definition.Input;
            Input = backend.Allocate<float>(new Shape(batch, input.Channels, input.Height, input.Width));
            Labels = backend.Allocate<int>(new Shape(batch));
            LogitGradient = backend.Allocate<float>(new Shape(batch, network.Definition.Classes));
            var context = new NodeContext(backend, batch, network._parameters, network._state);
            _nodes = [.. network.Definition.LayersWithInputGradient().Select(x => x.Layer.CreateNode(context, x.NeedInputGradient))];
        }

        public int Batch { get; }

        /// <summary>[N, C, H, W] input images; upload a batch here.</summary>
        public Tensor<float> Input { get; }

        /// <summary>[N] class labels.</summary>
        public Tensor<int> Labels { get; }

        /// <summary>[N, classes]: written by <see cref="Loss"/>.</summary>
        public Tensor<float> LogitGradient { get; }

        /// <summary>Runs the layers on <see cref="Input"/> and returns the logits [N, classes].</summary>
        public Tensor<float> Forward(ForwardMode mode)
        {
            var x = Input;
            foreach (var n in _nodes) x = n.Forward(x, mode);
            _logits = x;
            return x;
        }

        /// <summary>Softmax cross-entropy of the last forward's logits; accumulates [loss sum, correct count].</summary>
        public void Loss(Tensor<float> lossAndCorrect)
        {
            var logits = _logits ?? throw new InvalidOperationException("loss before forward");
            _network.Backend.SoftmaxCrossEntropy(Batch, _network.Definition.Classes, logits, Labels, LogitGradient, lossAndCorrect);
        }

        /// <summary>Back-propagates <see cref="LogitGradient"/>; every parameter's gradient is overwritten.</summary>
        public void Backward()
        {
            Tensor<float>? dy = LogitGradient;
            for (int i = _nodes.Length - 1; i >= 0 && dy is not null; i--) dy = _nodes[i].Backward(dy);
        }

        public void Dispose()
        {
            foreach (var n in _nodes) n.Dispose();
            Input.Dispose();
            Labels.Dispose();
            LogitGradient.Dispose();
        }
    }
}
