using LaPerm.Core.Backend;
using LaPerm.Core.Data;

namespace LaPerm.Cpu;

// The data ops: the reference every device gather is compared with. The "device" data set is the
// host one (no copy), and a batch is Dataset.FillBatch over the epoch order's positions that the
// last BeginStep names (training) or over consecutive stored records (evaluation).
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
        var records = _batchRecords.Get(step.BatchSize).AsSpan(0, step.BatchSize);
        EpochShuffler.Fill(shuffleSeed, step.Epoch, source.Count, step.BatchStart, records);
        Fill(source, records, augmenter, step.Epoch, images, labels);
    }

    public void GatherRecords(IDeviceDataset data, int start, Tensor<float> images, Tensor<int> labels)
    {
        Dataset source = OwnDataset(data).Source;
        ArgumentNullException.ThrowIfNull(labels);
        int size = labels.Length;
        GatherGuard.ValidateRecords(source, start, size);
        var records = _batchRecords.Get(size).AsSpan(0, size);
        for (int i = 0; i < size; i++) records[i] = start + i;
        Fill(source, records, null, 0, images, labels);
    }

    private void Fill(Dataset source, ReadOnlySpan<int> records, Augmenter? augmenter, int epoch, Tensor<float> images, Tensor<int> labels)
    {
        var imageData = Own(images, nameof(images));
        var labelData = Own(labels, nameof(labels));
        BackendGuard.Length(images, (long)records.Length * source.SampleSize, nameof(images));
        BackendGuard.Length(labels, records.Length, nameof(labels));
        // Every image is computed by one thread from its own draws: the result does not depend on Threads.
        source.FillBatch(records, imageData.Span, labelData.Span, augmenter, epoch, Threads);
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
