using LaPerm.Core.Backend;
using LaPerm.Core.Data;

namespace LaPerm.Cpu;

// The data ops: the reference every device gather is compared with. The "device" data set is the
// host one (no copy), and a batch is Dataset.FillBatch over the epoch order's positions that the
// last BeginStep names.
public sealed partial class CpuBackend
{
    private readonly IntScratchBuffer _batchRecords = new();

    public IDeviceDataset UploadDataset(Dataset data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(data);
        return new CpuDataset(this, data);
    }

    public void GatherBatch(IDeviceDataset data, ulong shuffleSeed, Augmenter? augmenter, Tensor<float> images, Tensor<int> labels)
    {
        Dataset source = OwnDataset(data).Source;
        StepScalars step = _step;
        GatherGuard.Validate(source, step);
        var imageData = Own(images, nameof(images));
        var labelData = Own(labels, nameof(labels));
        BackendGuard.Length(images, (long)step.BatchSize * source.SampleSize, nameof(images));
        BackendGuard.Length(labels, step.BatchSize, nameof(labels));
        var records = _batchRecords.Get(step.BatchSize).AsSpan(0, step.BatchSize);
        EpochShuffler.Fill(shuffleSeed, step.Epoch, source.Count, step.BatchStart, records);
        // Every image is computed by one thread from its own draws: the result does not depend on Threads.
        source.FillBatch(records, imageData.Span, labelData.Span, augmenter, step.Epoch, Threads);
    }

    private CpuDataset OwnDataset(IDeviceDataset data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(data);
        if (data is CpuDataset cpu && ReferenceEquals(cpu.Backend, this))
        {
            ObjectDisposedException.ThrowIf(cpu.IsDisposed, cpu);
            return cpu;
        }
        throw new ArgumentException($"The data set {data.Source.Name} was uploaded to another backend, not to this cpu backend.", nameof(data));
    }

    private sealed class CpuDataset(CpuBackend backend, Dataset source) : IDeviceDataset
    {
        public CpuBackend Backend { get; } = backend;
        public Dataset Source { get; } = source;
        public bool IsDisposed { get; private set; }
        public void Dispose() => IsDisposed = true;
    }
}
