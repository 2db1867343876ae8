using System.Globalization;
using LaPerm.Core.Backend;
using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// Watches every step for a loss, gradient or weight that is NaN or infinite, without reading
/// anything back per step: the checks are backend ops enqueued inside the step (on a device, tiny
/// kernels that a captured graph replays; <see cref="IBackend.GuardLoss"/> and the ops after it),
/// and the host looks at what they recorded only at its readback points (<see cref="Check"/>:
/// progress, evaluation, checkpoint, sync, epoch end, end of run).
/// <para><see cref="NonFinitePolicy.Stop"/>: the first step whose accumulated loss is not finite is
/// recorded and from then on the optimizer updates nothing, so at the next readback point the run
/// stops naming that step and the first non-finite weight tensor, with the weights as they were
/// before the bad step; no checkpoint is written after it, so the last one stays good.</para>
/// <para><see cref="NonFinitePolicy.SkipStep"/>: copies of the running loss and the batch-norm
/// running statistics are made (device to device) before each forward pass; a step whose loss or
/// any gradient is not finite is marked, its update is left out (weights and optimizer state
/// untouched, Adam's t not advanced), the copies are put back, and the step is logged; at the next
/// readback point each logged step gets its "skipped_step" line in metrics.jsonl and the trainer
/// takes its images out of the running averages.</para>
/// </summary>
public sealed class NonFiniteGuard(Network network, Tensor<float> lossAndCorrect, NonFinitePolicy policy, MetricsWriter? metrics,
    Func<string> lastCheckpoint)
{
    private readonly float[] _loss = new float[2];

    // skip-step: the running loss and the batch-norm running statistics before the forward pass.
    private readonly Tensor<float>? _lossBackup = policy == NonFinitePolicy.SkipStep ? network.Backend.Allocate<float>(new Shape(2)) : null;
    private readonly Tensor<float>[] _stateBackup = policy == NonFinitePolicy.SkipStep
        ? [.. network.State.Select(s => network.Backend.Allocate<float>(s.Value.Shape))] : [];

    public NonFinitePolicy Policy { get; } = policy;
    public long SkippedSteps { get; set; }

    /// <summary>Forgets a record left on the backend by an earlier run (waits once).</summary>
    public void Reset() => network.Backend.TakeNonFinite();

    /// <summary>Before the step's forward pass (skip-step: copies of what it would have to put back).</summary>
    public void BeforeStep()
    {
        if (Policy != NonFinitePolicy.SkipStep) return;
        network.Backend.Copy(lossAndCorrect, _lossBackup!);
        for (int i = 0; i < _stateBackup.Length; i++) network.Backend.Copy(network.State[i].Value, _stateBackup[i]);
    }

    /// <summary>After the step's loss.</summary>
    public void AfterLoss() => network.Backend.GuardLoss(lossAndCorrect, Policy == NonFinitePolicy.SkipStep);

    /// <summary>After the backward pass, before the optimizer (skip-step: the gradient checks and the restores).</summary>
    public void AfterBackward()
    {
        if (Policy != NonFinitePolicy.SkipStep) return;
        var backend = network.Backend;
        var ps = network.Parameters;
        for (int i = 0; i < ps.Count; i++) backend.GuardGradient(ps[i].Gradient, i);
        backend.RestoreIfSkipped(_lossBackup!, lossAndCorrect);
        for (int i = 0; i < _stateBackup.Length; i++) backend.RestoreIfSkipped(_stateBackup[i], network.State[i].Value);
        backend.CommitStepGuard();
    }

    /// <summary>
    /// A readback point (waits for the enqueued steps). Stop: throws <see cref="NonFiniteException"/>
    /// when a step's loss was not finite. Skip-step: writes a "skipped_step" line for every step
    /// left out since the last check and returns how many steps and images those were
    /// (<paramref name="fullBatch"/> images for any step beyond the backend's record capacity).
    /// </summary>
    public (long Steps, long Images) Check(int fullBatch)
    {
        var report = network.Backend.TakeNonFinite();
        if (report.FirstNonFiniteStep != 0)
        {
            network.Backend.Download(lossAndCorrect, _loss);
            var (tensor, count, length) = FirstNonFinite(network.Parameters.Select(p => (p.Name, p.Value)));
            string where = tensor is null ? "every weight is finite, so the forward pass overflowed"
                : string.Create(CultureInfo.InvariantCulture, $"first non-finite weight tensor '{tensor}' ({count} of {length} values)");
            throw new NonFiniteException(string.Create(CultureInfo.InvariantCulture,
                $"the training loss is {_loss[0]} at step {report.FirstNonFiniteStep}; {where}. {lastCheckpoint()}"));
        }
        long images = (long)report.Lost * fullBatch;
        foreach (var s in report.Skipped)
        {
            string? tensor = s.Gradient ? network.Parameters[s.Tensor].Name : null;
            metrics?.Write(new Dictionary<string, object?> { ["event"] = "skipped_step", ["step"] = s.Step, ["non_finite"] = s.Gradient ? "gradient" : "loss", ["tensor"] = tensor });
            images += s.BatchSize;
        }
        long steps = report.Skipped.Count + report.Lost;
        SkippedSteps += steps;
        return (steps, images);
    }

    /// <summary>The first tensor holding NaN or an infinity, how many such values it has and its length.</summary>
    public (string? Name, long Count, long Length) FirstNonFinite(IEnumerable<(string Name, Tensor<float> Tensor)> tensors)
    {
        foreach (var (name, tensor) in tensors)
        {
            var values = new float[tensor.Length];
            network.Backend.Download(tensor, values);
            long bad = CountNonFinite(values);
            if (bad > 0) return (name, bad, values.Length);
        }
        return (null, 0, 0);
    }

    public static long CountNonFinite(ReadOnlySpan<float> values)
    {
        long bad = 0;
        foreach (float v in values)
            if (!float.IsFinite(v)) bad++;
        return bad;
    }
}
