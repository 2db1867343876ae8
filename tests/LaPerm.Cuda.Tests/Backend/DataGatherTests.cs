using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// <see cref="IBackend.GatherBatch"/> on the device (gather_batch_v1 in cuda/kernels/data.cu)
/// against the CPU backend, bit for bit: the epoch order, the labels, the normalisation and the
/// augmentation warp (random parameters, double-precision sampling map, bilinear float
/// interpolation) are the same integer and IEEE operations on both sides. Inputs are random
/// bytes; outputs are poisoned before each gather.
/// </summary>
public abstract class DataGatherTests
{
    protected abstract CudaBackend Open();

    private static Dataset RandomDataset(int seed, int count, int channels, int height, int width)
    {
        var rng = new Random(seed);
        var images = new byte[count * channels * height * width];
        rng.NextBytes(images);
        var labels = new byte[count];
        for (int i = 0; i < count; i++) labels[i] = (byte)rng.Next(10);
        return new Dataset("random", images, labels, channels, height, width, 10);
    }

    private static (float[] Images, int[] Labels) Gather(IBackend backend, Dataset data, ulong seed, int epoch, int start, int size, Augmenter? augmenter)
    {
        using var device = backend.UploadDataset(data);
        using var images = Compare.Poisoned(backend, size, data.Channels, data.Height, data.Width);
        using var labels = Compare.PoisonedInts(backend, size);
        backend.BeginStep(new StepScalars(1, epoch, start, size, 1e-3f, 1));
        backend.GatherBatch(device, seed, augmenter, images, labels);
        return (Compare.Get(backend, images), Compare.Get(backend, labels));
    }

    [Theory]
    [InlineData(1, 28, 28, "none")]
    [InlineData(1, 28, 28, "mnist")]
    [InlineData(3, 32, 32, "none")]
    [InlineData(3, 32, 32, "cifar")]
    [InlineData(3, 32, 32, "mnist")]   // zoom on three channels
    [InlineData(2, 5, 7, "cifar")]     // a block of more threads than the image has pixels
    [InlineData(1, 28, 28, "rot")]     // rotations up to 360 degrees: every quadrant's sine and cosine sign
    public void GatheredBatchesAreBitIdenticalToTheCpuBackend(int channels, int height, int width, string preset)
    {
        var data = RandomDataset(channels * 100 + height, 203, channels, height, width);
        var augmenter = preset == "none" ? null : new Augmenter(preset == "rot" ? new AugmentationPreset("rot", 360f, 0f, 0f, false) : AugmentationPreset.Parse(preset), 17);
        using var device = Open();
        using var cpu = new CpuBackend(2);
        foreach (var (epoch, start, size) in new[] { (0, 0, 40), (3, 150, 53) })
        {
            var expected = Gather(cpu, data, 9, epoch, start, size, augmenter);
            var actual = Gather(device, data, 9, epoch, start, size, augmenter);
            Compare.Equal(expected.Labels, actual.Labels, $"{preset} labels, epoch {epoch}");
            Compare.BitEqual(expected.Images, actual.Images, $"{preset} {channels}x{height}x{width} images, epoch {epoch}");
        }
    }

    private static (float[] Images, int[] Labels) GatherRecords(IBackend backend, Dataset data, int start, int size)
    {
        using var device = backend.UploadDataset(data);
        using var images = Compare.Poisoned(backend, size, data.Channels, data.Height, data.Width);
        using var labels = Compare.PoisonedInts(backend, size);
        backend.GatherRecords(device, start, images, labels);
        return (Compare.Get(backend, images), Compare.Get(backend, labels));
    }

    [Theory]
    [InlineData(1, 28, 28)]
    [InlineData(3, 32, 32)]
    [InlineData(2, 5, 7)]
    public void EvaluationBatchesInStoredOrderAreBitIdenticalToTheCpuBackendAndToFillBatch(int channels, int height, int width)
    {
        var data = RandomDataset(channels * 1000 + height * 10 + width, 211, channels, height, width);
        using var device = Open();
        using var cpu = new CpuBackend(2);
        // A step block naming another batch must not matter: the start is the argument.
        device.BeginStep(new StepScalars(4, 3, 100, 50, 1e-3f, 4));
        cpu.BeginStep(new StepScalars(4, 3, 100, 50, 1e-3f, 4));
        foreach (var (start, size) in new[] { (0, 64), (64, 64), (192, 19), (210, 1), (37, 101) })
        {
            var records = Enumerable.Range(start, size).ToArray();
            var hostImages = new float[size * data.SampleSize];
            var hostLabels = new int[size];
            data.FillBatch(records, hostImages, hostLabels, null, 0, 1);
            var expected = GatherRecords(cpu, data, start, size);
            var actual = GatherRecords(device, data, start, size);
            Compare.Equal(hostLabels, expected.Labels, $"cpu labels of records {start}..");
            Compare.BitEqual(hostImages, expected.Images, $"cpu images of records {start}..");
            Compare.Equal(expected.Labels, actual.Labels, $"labels of records {start}..");
            Compare.BitEqual(expected.Images, actual.Images, $"{channels}x{height}x{width} images of records {start}..");
        }
    }

    [Fact]
    public void EvaluationRecordsBeyondTheDataSetOrAForeignDataSetAreRejected()
    {
        var data = RandomDataset(6, 20, 1, 4, 4);
        using var device = Open();
        using var cpu = new CpuBackend(1);
        using var onCpu = cpu.UploadDataset(data);
        using var onDevice = device.UploadDataset(data);
        foreach (var (backend, own, foreign) in new (IBackend, IDeviceDataset, IDeviceDataset)[] { (device, onDevice, onCpu), (cpu, onCpu, onDevice) })
        {
            using var images = backend.Allocate<float>(new Shape(8, 1, 4, 4));
            using var labels = backend.Allocate<int>(new Shape(8));
            using var shortImages = backend.Allocate<float>(new Shape(7, 1, 4, 4));
            Assert.Throws<ArgumentException>(() => backend.GatherRecords(foreign, 0, images, labels));
            Assert.Throws<ArgumentOutOfRangeException>(() => backend.GatherRecords(own, 13, images, labels));
            Assert.Throws<ArgumentOutOfRangeException>(() => backend.GatherRecords(own, -1, images, labels));
            Assert.Throws<ArgumentException>(() => backend.GatherRecords(own, 0, shortImages, labels));
            backend.GatherRecords(own, 12, images, labels);   // records 12..19: the last batch fits
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(31)]
    [InlineData(257)]
    [InlineData(1031)]
    [InlineData(4)]
    [InlineData(1024)]
    public void TheDeviceEpochOrderIsEpochShufflersPermutation(int count)
    {
        // Each record's 1 x 1 x 4 image holds its index in three bytes, so the gathered
        // (unaugmented) batch of the whole epoch spells out the order the kernel computed.
        var images = new byte[count * 4];
        var labels = new byte[count];
        var rng = new Random(count);
        for (int i = 0; i < count; i++)
        {
            images[4 * i] = (byte)i;
            images[4 * i + 1] = (byte)(i >> 8);
            images[4 * i + 2] = (byte)(i >> 16);
            images[4 * i + 3] = (byte)rng.Next(256);
            labels[i] = (byte)rng.Next(10);
        }
        var data = new Dataset("indices", images, labels, 1, 1, 4, 10);
        using var device = Open();
        foreach (var (seed, epoch) in new[] { (1UL, 0), (1UL, 5), (12345UL, 2) })
        {
            var (gathered, gatheredLabels) = Gather(device, data, seed, epoch, 0, count, null);
            var order = new int[count];
            for (int p = 0; p < count; p++)
                order[p] = (int)Math.Round(gathered[4 * p] * 255f) | (int)Math.Round(gathered[4 * p + 1] * 255f) << 8 | (int)Math.Round(gathered[4 * p + 2] * 255f) << 16;
            Compare.Equal(EpochShuffler.Permutation(seed, epoch, count), order, $"order of {count}, seed {seed}, epoch {epoch}");
            Compare.Equal([.. order.Select(r => (int)labels[r])], gatheredLabels, $"labels of {count}");
        }
    }

    [Fact]
    public void AForeignDataSetOrABatchBeyondTheEpochIsRejected()
    {
        var data = RandomDataset(5, 20, 1, 4, 4);
        using var device = Open();
        using var cpu = new CpuBackend(1);
        using var onCpu = cpu.UploadDataset(data);
        using var onDevice = device.UploadDataset(data);
        using var images = device.Allocate<float>(new Shape(8, 1, 4, 4));
        using var labels = device.Allocate<int>(new Shape(8));
        device.BeginStep(new StepScalars(1, 0, 0, 8, 1e-3f, 1));
        Assert.Throws<ArgumentException>(() => device.GatherBatch(onCpu, 1, null, images, labels));
        device.BeginStep(new StepScalars(1, 0, 13, 8, 1e-3f, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => device.GatherBatch(onDevice, 1, null, images, labels));
        device.BeginStep(new StepScalars(1, 0, 0, 7, 1e-3f, 1));
        Assert.Throws<ArgumentException>(() => device.GatherBatch(onDevice, 1, null, images, labels));
    }

    [Fact]
    public void ACapturedGatherReadsEachStepsEpochAndPosition()
    {
        // Captured once at (epoch 0, start 0), replayed after BeginStep(epoch 2, start 60): the
        // replay must gather the second batch, because the kernel reads both from the step block.
        var data = RandomDataset(7, 150, 1, 28, 28);
        var augmenter = new Augmenter(AugmentationPreset.Mnist, 3);
        const int size = 24;
        using var device = Open();
        using var cpu = new CpuBackend(2);
        var expected = Gather(cpu, data, 11, 2, 60, size, augmenter);

        using var onDevice = device.UploadDataset(data);
        using var images = Compare.Poisoned(device, size, 1, 28, 28);
        using var labels = Compare.PoisonedInts(device, size);
        device.BeginStep(new StepScalars(1, 0, 0, size, 1e-3f, 1));
        var stream = device.Device.Stream;
        stream.BeginCapture();
        device.GatherBatch(onDevice, 11, augmenter, images, labels);
        using var graph = stream.EndCapture();
        using var executable = graph.Instantiate();
        device.Fill(images, float.NaN);
        device.BeginStep(new StepScalars(2, 2, 60, size, 1e-3f, 2));
        executable.Launch(stream);
        device.Synchronize();
        Compare.Equal(expected.Labels, Compare.Get(device, labels), "replayed labels");
        Compare.BitEqual(expected.Images, Compare.Get(device, images), "replayed images");
    }

    [Fact]
    public void AReplayedGatherPastTheEpochGivesNaNPixelsAndLabelMinusOne()
    {
        // The host checks only eager calls; a graph replayed after a BeginStep naming positions
        // beyond the data set must not hang walking the order, and must poison the loss.
        var data = RandomDataset(8, 30, 1, 6, 6);
        using var device = Open();
        using var onDevice = device.UploadDataset(data);
        // A finite sentinel, not NaN: the NaN expected past the epoch must be written by the gather.
        using var images = Compare.Put(device, Enumerable.Repeat(12345f, 8 * 36).ToArray(), 8, 1, 6, 6);
        using var labels = Compare.PoisonedInts(device, 8);
        device.BeginStep(new StepScalars(1, 0, 0, 8, 1e-3f, 1));
        var stream = device.Device.Stream;
        stream.BeginCapture();
        device.GatherBatch(onDevice, 5, null, images, labels);
        using var graph = stream.EndCapture();
        using var executable = graph.Instantiate();
        device.BeginStep(new StepScalars(2, 0, 26, 8, 1e-3f, 2));   // positions 26..33 of 30
        device.Upload<float>(Enumerable.Repeat(12345f, 8 * 36).ToArray(), images);   // the capture ran nothing, but be sure
        device.Upload<int>(Enumerable.Repeat(int.MinValue, 8).ToArray(), labels);
        executable.Launch(stream);
        device.Synchronize();
        var gotLabels = Compare.Get(device, labels);
        var gotImages = Compare.Get(device, images);
        var expected = EpochShuffler.Permutation(5, 0, 30);
        for (int i = 0; i < 8; i++)
        {
            bool inside = 26 + i < 30;
            Assert.Equal(inside ? data.Labels[expected[26 + i]] : -1, gotLabels[i]);
            for (int p = 0; p < 36; p++)
                Assert.Equal(inside ? data.Image(expected[26 + i])[p] / 255f : float.NaN, gotImages[i * 36 + p]);
        }
    }
}

public sealed class EmuDataGatherTests : DataGatherTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuDataGatherTests : DataGatherTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}
