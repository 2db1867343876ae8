using System.Runtime.InteropServices;
using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// The data ops: the training set's raw bytes live on the device for the whole run, and each batch
// is one launch of gather_batch_v1 (cuda/kernels/data.cu), which computes the epoch order, the
// augmentation draw and the warp exactly as the CPU backend's Dataset.FillBatch does. Epoch and
// batch start come from the step block (laperm/step.cuh), so a captured gather replays correctly.
// Evaluation batches are the same launch in stored order from a start passed by value (GatherRecords).
public sealed partial class CudaBackend
{
    private DataKernels? _dataKernels;

    public IDeviceDataset UploadDataset(Dataset data)
    {
        Begin();
        ArgumentNullException.ThrowIfNull(data);
        _dataKernels ??= new DataKernels(_device);
        return DeviceDataset.Upload(this, data);
    }

    public void GatherBatch(IDeviceDataset data, ulong shuffleSeed, Augmenter? augmenter, Tensor<float> images, Tensor<int> labels)
    {
        Begin();
        var dataset = OwnDataset(data);
        // The kernel reads epoch and batch start from the step block; the host copy of what the
        // last BeginStep wrote sizes the launch and checks the tensors.
        StepScalars step = _stepScalars;
        GatherGuard.Validate(dataset.Source, step);
        LaunchGather(dataset, step.BatchSize, shuffleSeed, storedStart: -1, augmenter?.Preset ?? AugmentationPreset.None,
            augmenter?.RandomStream ?? 0, images, labels);
    }

    public void GatherRecords(IDeviceDataset data, int start, Tensor<float> images, Tensor<int> labels)
    {
        Begin();
        var dataset = OwnDataset(data);
        ArgumentNullException.ThrowIfNull(labels);
        int size = labels.Length;
        GatherGuard.ValidateRecords(dataset.Source, start, size);
        LaunchGather(dataset, size, shuffleSeed: 0, storedStart: start, AugmentationPreset.None, 0, images, labels);
    }

    /// <summary>One gather_batch_v1 launch: storedStart &lt; 0 gathers the step block's batch of the epoch order, else records storedStart.. in stored order.</summary>
    private void LaunchGather(DeviceDataset dataset, int size, ulong shuffleSeed, int storedStart, AugmentationPreset preset, ulong stream,
        Tensor<float> images, Tensor<int> labels)
    {
        Dataset source = dataset.Source;
        ulong pImages = Pointer(images, nameof(images), (long)size * source.SampleSize);
        ulong pLabels = Pointer(labels, nameof(labels), size);
        // The shift ranges in float, as Augmenter.Draw computes them.
        float shiftX = preset.ShiftFraction * source.Width, shiftY = preset.ShiftFraction * source.Height;
        int plane = source.Height * source.Width;
        // Small images (tests) need fewer threads than a block's 256; a block is whole warps.
        uint threads = (uint)Math.Min(BlockSize, (plane + 31) / 32 * 32);
        _dataKernels!.GatherBatch.Launch((uint)size, threads, 0, Stream,
            dataset.Record.Pointer, shuffleSeed, StepBlock.Pointer, storedStart,
            stream, preset.RotationDegrees, preset.ZoomRange, shiftX, shiftY, preset.HorizontalFlip ? 1 : 0,
            pImages, pLabels);
    }

    private DeviceDataset OwnDataset(IDeviceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data is DeviceDataset device && ReferenceEquals(device.Backend, this))
        {
            ObjectDisposedException.ThrowIf(device.IsDisposed, device);
            return device;
        }
        throw new ArgumentException($"The data set {data.Source.Name} was uploaded to another backend, not to this {Name} backend.", nameof(data));
    }

    /// <summary>data.cu's DataSetRecord: where the bytes are and their shape (48 bytes, pointers first).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct DataSetRecord(ulong Images, ulong Labels, int Count, int Channels, int Height, int Width, long Reserved);

    private sealed class DataKernels : IDisposable
    {
        private readonly DeviceModule _module;

        public DataKernels(Device device)
        {
            _module = device.LoadModule("data.ptx");
            GatherBatch = _module.GetKernel("gather_batch_v1");
        }

        public Kernel GatherBatch { get; }

        public void Dispose() => _module.Dispose();
    }

    /// <summary>The bytes on the device plus the record the kernel reads them through.</summary>
    private sealed class DeviceDataset : IDeviceDataset
    {
        private readonly DeviceBuffer<byte> _images;
        private readonly DeviceBuffer<byte> _labels;

        private DeviceDataset(CudaBackend backend, Dataset source, DeviceBuffer<byte> images, DeviceBuffer<byte> labels, DeviceBuffer<DataSetRecord> record)
        {
            Backend = backend;
            Source = source;
            _images = images;
            _labels = labels;
            Record = record;
        }

        public static DeviceDataset Upload(CudaBackend backend, Dataset source)
        {
            DeviceBuffer<byte>? images = null, labels = null;
            DeviceBuffer<DataSetRecord>? record = null;
            try
            {
                images = backend.AllocateBuffer<byte>(Math.Max(source.Images.Length, 1));
                labels = backend.AllocateBuffer<byte>(Math.Max(source.Labels.Length, 1));
                record = backend.AllocateBuffer<DataSetRecord>(1);
                images.CopyFrom(source.Images, backend.Stream);
                labels.CopyFrom(source.Labels, backend.Stream);
                record.CopyFrom([new DataSetRecord(images.Pointer, labels.Pointer, source.Count, source.Channels, source.Height, source.Width, 0)], backend.Stream);
                return new DeviceDataset(backend, source, images, labels, record);
            }
            catch
            {
                record?.Dispose();
                labels?.Dispose();
                images?.Dispose();
                throw;
            }
        }

        public CudaBackend Backend { get; }
        public Dataset Source { get; }
        public DeviceBuffer<DataSetRecord> Record { get; }
        public bool IsDisposed { get; private set; }

        public void Dispose()
        {
            if (IsDisposed) return;
            IsDisposed = true;
            if (!Backend.BeforeFree()) return;
            Record.Dispose();
            _labels.Dispose();
            _images.Dispose();
        }
    }
}
