using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// The per-step scalar block (cuda/include/laperm/step.cuh): 32 bytes of device memory that
// step_begin_v1 rewrites once per step from by-value arguments. Dropout, SGD and Adam take its
// address instead of the step's values, so their launches are the same at every step and a
// captured graph replays correctly. Writing the block with a kernel (not a host copy) keeps it in
// stream order with the work around it: no host staging buffer that a later step could overwrite
// before the copy ran, and no wait.
public sealed partial class CudaBackend
{
    private DeviceBuffer<StepScalars>? _stepBlock;

    /// <summary>The guard's record: the first step whose loss was not finite, 0 = none (GuardLoss).</summary>
    private DeviceBuffer<long>? _nonFiniteStep;

    /// <summary>What the last BeginStep enqueued (host-side checks only; kernels read the block).</summary>
    private StepScalars _stepScalars;

    /// <summary>The block's device memory (allocated, zeroed, with the backend).</summary>
    internal DeviceBuffer<StepScalars> StepBlock => _stepBlock!;

    internal DeviceBuffer<long> NonFiniteStep => _nonFiniteStep!;

    private void AllocateStepBlock()
    {
        _stepBlock = AllocateBuffer<StepScalars>(1);
        _device.Runtime.Memset32(_stepBlock.Pointer, 0, _stepBlock.ByteLength / 4, Stream.Handle);
        _nonFiniteStep = AllocateBuffer<long>(1);
        _device.Runtime.Memset32(_nonFiniteStep.Pointer, 0, _nonFiniteStep.ByteLength / 4, Stream.Handle);
    }

    public void GuardLoss(Tensor<float> lossAndCorrect)
    {
        Begin();
        ulong pTotals = PointerAtLeast(lossAndCorrect, nameof(lossAndCorrect), 2);
        _kernels.StepGuardLoss.Launch(1, 1, 0, Stream, pTotals, StepBlock.Pointer, NonFiniteStep.Pointer);
    }

    public long TakeNonFiniteStep()
    {
        Begin();
        var step = new long[1];
        NonFiniteStep.CopyTo(step, Stream);
        if (step[0] != 0) _device.Runtime.Memset32(NonFiniteStep.Pointer, 0, NonFiniteStep.ByteLength / 4, Stream.Handle);
        return step[0];
    }

    public void BeginStep(in StepScalars scalars)
    {
        Begin();
        _stepScalars = scalars;
        _kernels.StepBegin.Launch(1, 1, 0, Stream, StepBlock.Pointer,
            scalars.Step, scalars.Epoch, scalars.BatchStart, scalars.BatchSize, scalars.LearningRate, scalars.AdamT);
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
