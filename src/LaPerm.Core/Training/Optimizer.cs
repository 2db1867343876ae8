using LaPerm.Core.Backend;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

public enum OptimizerKind
{
    Adam,
    Sgd,
}

/// <summary>
/// How a batch's per-example losses form the loss the optimizer descends. The backward pass
/// always produces the gradient of the mean; <see cref="Sum"/> scales it (and the L2 term)
/// by the batch size before the optimizer sees it.
/// </summary>
public enum LossReduction
{
    /// <summary>(1/N) sum of per-example losses + L2 (Keras fit/compile).</summary>
    Mean,

    /// <summary>
    /// Sum of per-example losses + N x L2: what the LaPerm authors' custom training loop
    /// descends (it takes the gradient of the per-example loss vector, to which the L2 term is
    /// added once per example, so the gradient is summed over the batch). Under Adam this
    /// differs from <see cref="Mean"/> only through epsilon, which becomes N times smaller
    /// relative to the gradient; that matters where gradients are tiny (the weight-agnostic
    /// F1/F2 setups, whose values are 0.08 and 0.03).
    /// </summary>
    Sum,
}

/// <summary>
/// The inner optimizer: Adam (Keras: beta1 0.9, beta2 0.999, eps 1e-7) or momentum SGD.
/// Its state (m, v or velocity, and Adam's step count) lives for the whole run and is not
/// reset by a LaPerm sync. L2 kernel regularisation (Keras: loss += l2 * sum(w^2)) enters
/// as g + 2 * l2 * w, formed in a scratch buffer with ScaleAdd.
/// </summary>
public sealed class Optimizer : IDisposable
{
    private readonly IBackend _backend;
    private readonly Network _network;
    private readonly Tensor<float>[] _first;
    private readonly Tensor<float>?[] _second;
    private readonly Tensor<float>?[] _regularised;

    public Optimizer(Network network, OptimizerKind kind, float momentum = 0.9f, LossReduction reduction = LossReduction.Mean)
    {
        _network = network;
        _backend = network.Backend;
        Kind = kind;
        Momentum = momentum;
        Reduction = reduction;
        var ps = network.Parameters;
        _first = [.. ps.Select(p => _backend.Allocate<float>(p.Info.Shape))];
        _second = [.. ps.Select(p => kind == OptimizerKind.Adam ? _backend.Allocate<float>(p.Info.Shape) : null)];
        _regularised = [.. ps.Select(p => p.Info.L2 > 0 ? _backend.Allocate<float>(p.Info.Shape) : null)];
    }

    public OptimizerKind Kind { get; }
    public float Momentum { get; }
    public LossReduction Reduction { get; }

    /// <summary>Steps taken so far (Adam's t after the next step is Steps + 1).</summary>
    public long Steps { get; private set; }

    /// <summary>
    /// The scalars of the next step (Adam's t = <see cref="Steps"/> + 1), for
    /// <see cref="IBackend.BeginStep"/>: the update reads the learning rate and t from there.
    /// </summary>
    public StepScalars NextStep(long step, int epoch, int batchStart, int batchSize, float learningRate) =>
        new(step, epoch, batchStart, batchSize, learningRate, Steps + 1);

    /// <summary>
    /// One step on the gradients the backward pass left in the parameters (those of the mean
    /// loss over <paramref name="batchSize"/> examples; the size matters only for <see cref="LossReduction.Sum"/>),
    /// with the learning rate and t of the backend's current step (<see cref="NextStep"/>).
    /// </summary>
    public void Step(int batchSize = 1)
    {
        EnqueueUpdate(batchSize);
        CountStep();
    }

    /// <summary>
    /// Counts a step whose update was enqueued, directly or by replaying captured ops that hold
    /// <see cref="EnqueueUpdate"/>'s ops (those read t from the step block, so only the count advances here).
    /// </summary>
    internal void CountStep() => Steps++;

    /// <summary>Takes back steps counted by <see cref="CountStep"/> that the non-finite guard left out.</summary>
    internal void UncountSteps(long steps) => Steps -= steps;

    /// <summary>Enqueues the update ops without counting the step (what a captured step holds).</summary>
    internal void EnqueueUpdate(int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size must be at least 1, got {batchSize}");
        var ps = _network.Parameters;
        // First every gradient the update needs (L2 term, batch-sum scaling), then every update:
        // the updates follow each other with no other op between them, so the CUDA backend batches
        // all of Adam's into one launch over a table that stays the same from step to step (and so
        // can be captured into a graph).
        var gradients = new Tensor<float>[ps.Count];
        for (int i = 0; i < ps.Count; i++)
        {
            var p = ps[i];
            var g = p.Gradient;
            if (_regularised[i] is { } scratch)
            {
                _backend.Copy(p.Value, scratch);
                _backend.ScaleAdd(2f * p.Info.L2, g, scratch); // scratch = g + 2 l2 w
                g = scratch;
            }
            if (Reduction == LossReduction.Sum && batchSize > 1)
            {
                // The backward pass overwrites the gradient every step, so scaling it in place is safe;
                // one rounding (exact for powers of two).
                _backend.Scale(batchSize, g); // g = N * (mean gradient + 2 l2 w)
            }
            gradients[i] = g;
        }
        for (int i = 0; i < ps.Count; i++)
        {
            var p = ps[i];
            if (Kind == OptimizerKind.Adam)
                _backend.AdamUpdate(AdamParameters.Keras, p.Value, gradients[i], _first[i], _second[i]!);
            else
                _backend.SgdMomentumUpdate(Momentum, p.Value, gradients[i], _first[i]);
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
