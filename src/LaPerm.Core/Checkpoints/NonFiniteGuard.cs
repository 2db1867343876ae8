using System.Globalization;
using LaPerm.Core.Backend;
using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// Watches every step for a loss, gradient or weight that is NaN or infinite.
/// <para>With <see cref="NonFinitePolicy.Stop"/> nothing waits on the host per step: after each
/// step's loss the backend's guard (<see cref="IBackend.GuardLoss"/>, on a device one tiny kernel
/// inside the step's graph) records the first step whose accumulated loss is not finite, and from
/// then on the optimizer updates nothing. The host looks at its readback points (<see cref="Check"/>:
/// progress, evaluation, checkpoint, sync, end of run) and stops naming that step and the first
/// non-finite weight tensor; the weights are still those before the bad step, and no checkpoint is
/// written after it, so the last one stays good.</para>
/// <para>With <see cref="NonFinitePolicy.SkipStep"/> it reads the accumulated loss after the forward
/// pass and every gradient after the backward pass, each step (host round trips, so the trainer
/// runs such steps eagerly, without graphs), and when anything is not finite leaves that step out
/// (weights, optimizer state, batch-norm running statistics and the running loss as before it)
/// and records a "skipped_step" line in metrics.jsonl.</para>
/// </summary>
public sealed class NonFiniteGuard(Network network, Tensor<float> lossAndCorrect, NonFinitePolicy policy, MetricsWriter? metrics,
    Func<string> lastCheckpoint)
{
    private readonly float[] _before = new float[2];
    private readonly float[] _after = new float[2];

    // skip-step: the batch-norm running statistics before the forward pass, put back when the step is skipped.
    private readonly Tensor<float>[] _stateBackup = policy == NonFinitePolicy.SkipStep
        ? [.. network.State.Select(s => network.Backend.Allocate<float>(s.Value.Shape))] : [];

    public NonFinitePolicy Policy { get; } = policy;
    public long SkippedSteps { get; set; }

    /// <summary>True when the policy reads values back every step (skip-step): such steps cannot be captured.</summary>
    public bool ChecksEveryStep => Policy == NonFinitePolicy.SkipStep;

    /// <summary>Forgets a record left on the backend by an earlier run (waits once).</summary>
    public void Reset() => network.Backend.TakeNonFiniteStep();

    /// <summary>
    /// A readback point (stop policy): throws <see cref="NonFiniteException"/> when the backend's
    /// guard recorded a non-finite loss since the last check. Waits for the enqueued steps.
    /// </summary>
    public void Check()
    {
        if (Policy != NonFinitePolicy.Stop) return;
        long step = network.Backend.TakeNonFiniteStep();
        if (step == 0) return;
        network.Backend.Download(lossAndCorrect, _after);
        var (tensor, count, length) = FirstNonFinite(network.Parameters.Select(p => (p.Name, p.Value)));
        string where = tensor is null ? "every weight is finite, so the forward pass overflowed"
            : string.Create(CultureInfo.InvariantCulture, $"first non-finite weight tensor '{tensor}' ({count} of {length} values)");
        throw new NonFiniteException(string.Create(CultureInfo.InvariantCulture,
            $"the training loss is {_after[0]} at step {step}; {where}. {lastCheckpoint()}"));
    }

    /// <summary>Call before the step's forward pass (skip-step keeps what it would have to put back).</summary>
    public void BeforeStep()
    {
        if (Policy != NonFinitePolicy.SkipStep) return;
        network.Backend.Download(lossAndCorrect, _before);
        for (int i = 0; i < _stateBackup.Length; i++) network.Backend.Copy(network.State[i].Value, _stateBackup[i]);
    }

    /// <summary>
    /// After the loss: true when the step may go on to backward. Stop: enqueues the backend's
    /// guard and returns true (the step is captured with it). Skip-step: reads the loss back.
    /// </summary>
    public bool AfterLoss(long step)
    {
        if (Policy == NonFinitePolicy.Stop)
        {
            network.Backend.GuardLoss(lossAndCorrect);
            return true;
        }
        network.Backend.Download(lossAndCorrect, _after);
        if (float.IsFinite(_after[0])) return true;
        Skip(step, "loss", null);
        return false;
    }

    /// <summary>After backward: true when the optimizer may apply the step.</summary>
    public bool AfterBackward(long step)
    {
        if (Policy != NonFinitePolicy.SkipStep) return true;
        var (tensor, _, _) = FirstNonFinite(network.Parameters.Select(p => (p.Name, p.Gradient)));
        if (tensor is null) return true;
        Skip(step, "gradient", tensor);
        return false;
    }

    private void Skip(long step, string what, string? tensor)
    {
        network.Backend.Upload<float>(_before, lossAndCorrect);
        for (int i = 0; i < _stateBackup.Length; i++) network.Backend.Copy(_stateBackup[i], network.State[i].Value);
        SkippedSteps++;
        metrics?.Write(new Dictionary<string, object?> { ["event"] = "skipped_step", ["step"] = step, ["non_finite"] = what, ["tensor"] = tensor });
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
