using LaPerm.Core.Backend;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

public enum OptimizerKind
{
    Adam,
    Sgd,
}

/// <summary>
/// The inner optimizer: Adam (Keras: beta1 0.9, beta2 0.999, eps 1e-7) or momentum SGD.
/// Its state (m, v or velocity, and Adam's step count) lives for the whole run and is not
/// reset by a LaPerm sync. L2 kernel regularisation (Keras: loss += l2 * sum(w^2)) enters
/// as g + 2 * l2 * w, formed in a scratch buffer with Axpy.
/// </summary>
public sealed class Optimizer : IDisposable
{
    private readonly IBackend _backend;
    private readonly Network _network;
    private readonly Tensor<float>[] _first;
    private readonly Tensor<float>?[] _second;
    private readonly Tensor<float>?[] _regularised;

    public Optimizer(Network network, OptimizerKind kind, float momentum = 0.9f)
    {
        _network = network;
        _backend = network.Backend;
        Kind = kind;
        Momentum = momentum;
        var ps = network.Parameters;
        _first = [.. ps.Select(p => _backend.Allocate<float>(p.Info.Shape))];
        _second = [.. ps.Select(p => kind == OptimizerKind.Adam ? _backend.Allocate<float>(p.Info.Shape) : null)];
        _regularised = [.. ps.Select(p => p.Info.L2 > 0 ? _backend.Allocate<float>(p.Info.Shape) : null)];
    }

    public OptimizerKind Kind { get; }
    public float Momentum { get; }

    /// <summary>Steps taken so far (Adam's t after the next step is Steps + 1).</summary>
    public long Steps { get; private set; }

    public void Step(float learningRate)
    {
        Steps++;
        var ps = _network.Parameters;
        for (int i = 0; i < ps.Count; i++)
        {
            var p = ps[i];
            var g = p.Gradient;
            if (_regularised[i] is { } scratch)
            {
                _backend.Copy(p.Value, scratch);
                _backend.Axpy(2f * p.Info.L2, g, scratch); // scratch = g + 2 l2 w
                g = scratch;
            }
            if (Kind == OptimizerKind.Adam)
                _backend.AdamUpdate(AdamStep.Keras(learningRate, Steps), p.Value, g, _first[i], _second[i]!);
            else
                _backend.SgdMomentumUpdate(learningRate, Momentum, p.Value, g, _first[i]);
        }
    }

    // ---- checkpoints (see Checkpoints/RunSession) ----
    /// <summary>Per parameter: Adam's m, or SGD's velocity.</summary>
    internal IReadOnlyList<Tensor<float>> FirstMoments => _first;

    /// <summary>Per parameter: Adam's v (null for SGD).</summary>
    internal IReadOnlyList<Tensor<float>?> SecondMoments => _second;

    internal void RestoreSteps(long steps) => Steps = steps;

    public void Dispose()
    {
        foreach (var t in _first) t.Dispose();
        foreach (var t in _second) t?.Dispose();
        foreach (var t in _regularised) t?.Dispose();
    }
}
