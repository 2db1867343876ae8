using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// The per-step scalar block (cuda/include/laperm/step.cuh): 32 bytes of device memory that
// step_begin_v1 rewrites once per step from by-value arguments. Dropout, SGD and Adam take its
// address instead of the step's values, so their launches are the same at every step and a
// captured graph replays correctly. Writing the block with a kernel (not a host copy) keeps it in
// stream order with the work around it: no host staging buffer that a later step could overwrite
// before the copy ran, and no wait. Beside it, the non-finite guard's record (struct StepGuard):
// the guard kernels of step.cu update it in stream order, the optimizers read it, and the host
// reads and clears it only in TakeNonFinite.
public sealed partial class CudaBackend
{
    private DeviceBuffer<StepScalars>? _stepBlock;

    /// <summary>The non-finite guard's record: struct StepGuard of laperm/step.cuh, as 64-bit words.</summary>
    private DeviceBuffer<long>? _guard;

    /// <summary>What the last BeginStep enqueued (host-side checks only; kernels read the block).</summary>
    private StepScalars _stepScalars;

    /// <summary>The block's device memory (allocated, zeroed, with the backend).</summary>
    internal DeviceBuffer<StepScalars> StepBlock => _stepBlock!;

    internal DeviceBuffer<long> Guard => _guard!;

    private const int GuardHeaderBytes = 24, SkippedStepBytes = 24;

    private void AllocateStepBlock()
    {
        _stepBlock = AllocateBuffer<StepScalars>(1);
        _device.Runtime.Memset32(_stepBlock.Pointer, 0, _stepBlock.ByteLength / 4, Stream.Handle);
        _guard = AllocateBuffer<long>((GuardHeaderBytes + SkippedStepBytes * NonFiniteReport.Capacity) / 8);
        _device.Runtime.Memset32(_guard.Pointer, 0, _guard.ByteLength / 4, Stream.Handle);
    }

    /// <summary>
    /// How many steps the host may queue ahead of the device. Enough to keep the GPU busy while the
    /// host enqueues the next step (a graph replay is one call), few enough that a stop (Ctrl-C,
    /// SIGTERM, a target reached) waits for at most these steps, not for the thousand or so a
    /// driver's queue holds: minutes for a large model, hours on the stand-in.
    /// </summary>
    internal const int StepsAhead = 3;

    /// <summary>Recorded as each step begins; BeginStep waits for the one StepsAhead steps back.</summary>
    private DeviceEvent[]? _stepStarts;
    private long _stepsBegun;

    public void BeginStep(in StepScalars scalars)
    {
        Begin();
        _stepStarts ??= [.. Enumerable.Range(0, StepsAhead).Select(_ => _device.CreateEvent())];
        var start = _stepStarts[_stepsBegun % StepsAhead];
        // The steps before the one begun StepsAhead steps ago are done on the device before this one
        // is queued. Never while capturing: a wait is not stream work.
        if (_stepsBegun >= StepsAhead && !_capturing) start.Synchronize();
        _stepScalars = scalars;
        _kernels.StepBegin.Launch(1, 1, 0, Stream, StepBlock.Pointer, Guard.Pointer,
            scalars.Step, scalars.Epoch, scalars.BatchStart, scalars.BatchSize, scalars.LearningRate, scalars.AdamT);
        if (!_capturing) start.Record(Stream);
        _stepsBegun++;
    }

    public void GuardLoss(Tensor<float> lossAndCorrect, bool skipStep)
    {
        Begin();
        ulong pTotals = PointerAtLeast(lossAndCorrect, nameof(lossAndCorrect), 2);
        _kernels.StepGuardLoss.Launch(1, 1, 0, Stream, pTotals, StepBlock.Pointer, Guard.Pointer, skipStep ? 1 : 0);
    }

    public void GuardGradient(Tensor<float> gradient, int index)
    {
        Begin();
        ulong pGradient = Own(gradient, nameof(gradient)).Pointer;
        _kernels.StepGuardGradient.Launch(Grid(gradient.Length), BlockSize, 0, Stream, (long)gradient.Length, pGradient, index, Guard.Pointer);
    }

    public void RestoreIfSkipped(Tensor<float> backup, Tensor<float> destination)
    {
        Begin();
        ulong pDestination = Own(destination, nameof(destination)).Pointer;
        ulong pBackup = Pointer(backup, nameof(backup), destination.Length);
        _kernels.StepGuardRestore.Launch(Grid(destination.Length), BlockSize, 0, Stream, (long)destination.Length, pBackup, pDestination, Guard.Pointer);
    }

    public void CommitStepGuard()
    {
        Begin();
        _kernels.StepGuardCommit.Launch(1, 1, 0, Stream, StepBlock.Pointer, Guard.Pointer);
    }

    public NonFiniteReport TakeNonFinite()
    {
        Begin();
        var words = new long[Guard.Length];
        Guard.CopyTo(words, Stream);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(words.AsSpan());
        long first = BitConverter.ToInt64(bytes[..8]);
        int skipped = BitConverter.ToInt32(bytes[16..20]);
        if (first == 0 && skipped == 0) return NonFiniteReport.None;
        // Clear what was taken: first_nonfinite_step (bytes 0-7) and the log count (bytes 16-19).
        _device.Runtime.Memset32(Guard.Pointer, 0, 2, Stream.Handle);
        _device.Runtime.Memset32(Guard.Pointer + 16, 0, 1, Stream.Handle);
        int kept = Math.Min(skipped, NonFiniteReport.Capacity);
        var steps = new SkippedStep[kept];
        for (int i = 0; i < kept; i++)
        {
            var entry = bytes.Slice(GuardHeaderBytes + i * SkippedStepBytes, SkippedStepBytes);
            steps[i] = new SkippedStep(BitConverter.ToInt64(entry[..8]), BitConverter.ToInt32(entry[8..12]) == 2,
                BitConverter.ToInt32(entry[12..16]), BitConverter.ToInt32(entry[16..20]));
        }
        return new NonFiniteReport(first, steps, skipped - kept);
    }

    /// <summary>The block's raw bytes as the kernels see them (waits for the stream; tests, diagnostics).</summary>
    public byte[] DownloadStepBlock()
    {
        Begin();
        var values = new StepScalars[1];
        StepBlock.CopyTo(values, Stream);
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }
}
