using LaPerm.Core.Backend;
using LaPerm.Cuda.Kernels;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// Adam as one multi-tensor launch per step. The optimizer calls AdamUpdate once per parameter
// tensor; each call only records the tensor. The next op of any kind (or a download, a
// synchronize, a tensor's disposal) launches adam_multi_v2 over every recorded tensor at once,
// so stream order is still call order. The device table of the batch is uploaded only when the
// set of tensors changes (the first step), so from the second step on the launch needs no host
// copy and can be captured into a graph. The learning rate and t are read from the step block
// (CudaBackend.Step.cs), so the captured launch is right at every replayed step. Same per-element
// arithmetic and the same lr_t bits as the CPU backend: bit-identical to it.
public sealed partial class CudaBackend
{
    /// <summary>Most blocks per tensor (grid-stride beyond).</summary>
    private const long AdamBlocksPerTensor = 512;

    private readonly List<AdamTensorRecord> _pendingAdam = [];
    private AdamParameters _pendingAdamParameters;
    private AdamTensorRecord[] _adamTableContents = [];
    private DeviceBuffer<AdamTensorRecord>? _adamTable;

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
        // Other hyper-parameters, or the same tensor twice, start a new batch.
        if (_pendingAdam.Count > 0 && (_pendingAdamParameters != parameters || _pendingAdam.Exists(r => r.Weights == pW)))
            FlushAdam();
        _pendingAdamParameters = parameters;
        _pendingAdam.Add(new AdamTensorRecord(pW, pG, pM, pV, w.Length));
    }

    private void FlushAdam()
    {
        if (_pendingAdam.Count == 0) return;
        if (!_pendingAdam.SequenceEqual(_adamTableContents))
        {
            if (_adamTable is null || _adamTable.Length < _pendingAdam.Count)
            {
                if (_adamTable is not null)
                {
                    _device.Synchronize();   // an earlier launch may still read the old table
                    _adamTable.Dispose();
                    _bufferGeneration++;     // a captured launch may refer to the old table
                    _adamTable = null;
                }
                _adamTable = AllocateBuffer<AdamTensorRecord>(_pendingAdam.Count);
            }
            // A host-to-device copy from pageable memory cannot be captured: a graph's first step
            // must use the table of the warm-up step before it.
            if (_capturing) throw new InvalidOperationException("the set of Adam tensors changed while capturing a graph; run the same step once before capturing it");
            _adamTableContents = [.. _pendingAdam];
            _adamTable.CopyFrom(_adamTableContents, Stream);
        }
        long longest = _pendingAdam.Max(r => r.Length);
        uint blocks = (uint)Math.Clamp((longest + BlockSize - 1) / BlockSize, 1, AdamBlocksPerTensor);
        AdamParameters p = _pendingAdamParameters;
        int count = _pendingAdam.Count;
        _pendingAdam.Clear();
        _kernels.AdamMulti.Launch(new Dim3(blocks, (uint)count), BlockSize, 0, Stream,
            count, p.Beta1, p.Beta2, p.Epsilon, StepBlock.Pointer, Guard.Pointer, _adamTable!.Pointer);
    }
}
