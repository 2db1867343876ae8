using LaPerm.Core.Backend;
using LaPerm.Cuda.Kernels;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// The optimizer update as one multi-tensor launch per step (Adam: adam_multi_v2, momentum SGD:
// sgd_momentum_multi_v1). The optimizer calls AdamUpdate / SgdMomentumUpdate once per parameter
// tensor; each call only records the tensor. The next op of any kind (or a download, a
// synchronize, a tensor's disposal) launches the pending batch over every recorded tensor at
// once, so stream order is still call order. A batch's device table is uploaded only when its
// set of tensors changes (the first step), so from the second step on the launch needs no host
// copy and can be captured into a graph. The learning rate and Adam's t are read from the step
// block (CudaBackend.Step.cs), so the captured launch is right at every replayed step. Same
// per-element arithmetic as the CPU backend: bit-identical to it.
public sealed partial class CudaBackend
{
    /// <summary>Most blocks per tensor (grid-stride beyond).</summary>
    private const long UpdateBlocksPerTensor = 512;

    private readonly UpdateBatch<AdamTensorRecord> _adam = new();
    private readonly UpdateBatch<SgdTensorRecord> _sgd = new();
    private AdamParameters _pendingAdamParameters;
    private float _pendingMomentum;

    /// <summary>A step's recorded updates of one optimizer and the device table of the last launch.</summary>
    private sealed class UpdateBatch<TRecord> where TRecord : unmanaged
    {
        public readonly List<TRecord> Pending = [];
        public TRecord[] TableContents = [];
        public DeviceBuffer<TRecord>? Table;
        public long Longest;
    }

    /// <remarks>
    /// Batched: the update is launched, together with the other tensors of the same step, before
    /// the next op. Call <see cref="Synchronize"/> before capturing a graph by hand, so no update
    /// recorded earlier is launched inside the capture.
    /// </remarks>
    public void AdamUpdate(AdamParameters parameters, Tensor<float> w, Tensor<float> g, Tensor<float> m, Tensor<float> v)
    {
        BeginWithoutFlush();
        if (_stepScalars.AdamT < 1) throw new InvalidOperationException($"Adam step t must be at least 1, got {_stepScalars.AdamT} (call BeginStep first)");
        ulong pW = Own(w, nameof(w)).Pointer;
        ulong pG = Pointer(g, nameof(g), w.Length);
        ulong pM = Pointer(m, nameof(m), w.Length);
        ulong pV = Pointer(v, nameof(v), w.Length);
        // Other hyper-parameters, the same tensor twice, or pending SGD updates start a new batch.
        if (_sgd.Pending.Count > 0 || (_adam.Pending.Count > 0 && (_pendingAdamParameters != parameters || _adam.Pending.Exists(r => r.Weights == pW))))
            FlushUpdates();
        _pendingAdamParameters = parameters;
        _adam.Pending.Add(new AdamTensorRecord(pW, pG, pM, pV, w.Length));
    }

    /// <remarks>Batched as <see cref="AdamUpdate"/>.</remarks>
    public void SgdMomentumUpdate(float momentum, Tensor<float> w, Tensor<float> g, Tensor<float> velocity)
    {
        BeginWithoutFlush();
        ulong pW = Own(w, nameof(w)).Pointer;
        ulong pG = Pointer(g, nameof(g), w.Length);
        ulong pVelocity = Pointer(velocity, nameof(velocity), w.Length);
        if (_adam.Pending.Count > 0 || (_sgd.Pending.Count > 0 && (BitConverter.SingleToUInt32Bits(_pendingMomentum) != BitConverter.SingleToUInt32Bits(momentum) || _sgd.Pending.Exists(r => r.Weights == pW))))
            FlushUpdates();
        _pendingMomentum = momentum;
        _sgd.Pending.Add(new SgdTensorRecord(pW, pG, pVelocity, w.Length));
    }

    /// <summary>Launches the pending batch of updates, if any (at most one optimizer has one).</summary>
    private void FlushUpdates()
    {
        if (UploadTable(_adam, r => r.Length) is { } adamTable)
        {
            AdamParameters p = _pendingAdamParameters;
            int count = _adam.Pending.Count;
            _adam.Pending.Clear();
            _kernels.AdamMulti.Launch(new Dim3(UpdateBlocks(_adam.Longest), (uint)count), BlockSize, 0, Stream,
                count, p.Beta1, p.Beta2, p.Epsilon, StepBlock.Pointer, Guard.Pointer, adamTable);
        }
        if (UploadTable(_sgd, r => r.Length) is { } sgdTable)
        {
            int count = _sgd.Pending.Count;
            _sgd.Pending.Clear();
            _kernels.SgdMomentumMulti.Launch(new Dim3(UpdateBlocks(_sgd.Longest), (uint)count), BlockSize, 0, Stream,
                count, _pendingMomentum, StepBlock.Pointer, Guard.Pointer, sgdTable);
        }
    }

    private static uint UpdateBlocks(long longest) => (uint)Math.Clamp((longest + BlockSize - 1) / BlockSize, 1, UpdateBlocksPerTensor);

    /// <summary>The device table of a batch's pending tensors (uploaded only when they changed); null when none are pending.</summary>
    private ulong? UploadTable<TRecord>(UpdateBatch<TRecord> batch, Func<TRecord, long> length) where TRecord : unmanaged
    {
        if (batch.Pending.Count == 0) return null;
        if (!batch.Pending.SequenceEqual(batch.TableContents))
        {
            // Replacing the table syncs, allocates and copies from pageable memory, none of which a
            // stream capture allows: a graph's first step must use the table of the warm-up step before it.
            if (_capturing) throw new InvalidOperationException("the set of optimizer tensors changed while capturing a graph; run the same step once before capturing it");
            if (batch.Table is null || batch.Table.Length < batch.Pending.Count)
            {
                if (batch.Table is not null)
                {
                    _device.Synchronize();   // an earlier launch may still read the old table
                    batch.Table.Dispose();
                    batch.Table = null;
                }
                batch.Table = AllocateBuffer<TRecord>(batch.Pending.Count);
            }
            batch.TableContents = [.. batch.Pending];
            batch.Table.CopyFrom(batch.TableContents, Stream);
            _bufferGeneration++;   // a captured launch reads the table (its address and count) as it was at capture
        }
        batch.Longest = batch.Pending.Max(length);
        return batch.Table!.Pointer;
    }
}
