using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

/// <summary>The same checks on a real GPU; skipped (with the reason) where there is none.</summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuKernelTests
{
    [Theory]
    [InlineData(1000, 1, 11)]
    [InlineData(3_000_001, 2, 14)]
    public void Axpy(int n, int variant, int seed)
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.Axpy(device, n, variant, seed);
    }

    [Theory]
    [InlineData(70_001, 1, 23)]
    [InlineData(1_000_000, 2, 26)]
    public void Sum(int n, int variant, int seed)
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.Sum(device, n, variant, seed);
    }

    [Theory]
    [InlineData(257, 33)]
    [InlineData(200_000, 34)]
    public void Scan(int n, int seed)
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.Scan(device, n, seed);
    }

    [Fact]
    public void Adam()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.Adam(device, 100_000, 42);
    }

    [Fact]
    public void AdamMultiTensor()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.AdamMulti(device, 43);
    }

    [Fact]
    public void GraphReplayEqualsDirectLaunches()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.GraphReplay(device, 51);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void CublasGemm(bool transposeA, bool transposeB)
    {
        using var device = TestDevices.OpenGpuOrSkip();
        KernelChecks.Gemm(device, transposeA, transposeB, 61);
    }

    [Theory]
    [InlineData(false, false, 0f)]
    [InlineData(true, true, -1f)]
    public void CublasBatchedGemmMatchesCpuBackend(bool transposeA, bool transposeB, float beta)
    {
        using var device = TestDevices.OpenGpuOrSkip();
        LibraryChecks.GemmAgainstCpu(device, transposeA, transposeB, beta, 62, exact: false);
    }

    [Theory]
    [InlineData(2, 3, 9, 9, 4, 3, 1, true)]
    [InlineData(4, 16, 32, 32, 32, 3, 1, true)]
    [InlineData(2, 4, 7, 6, 3, 2, 1, false)]
    public void CudnnConvolutionsMatchCpuBackend(int batch, int inC, int h, int w, int outC, int kernel, int stride, bool same)
    {
        using var device = TestDevices.OpenGpuOrSkip();
        if (Cudnn.TryLoad(out string? reason) is null) Assert.Skip($"cuDNN not installed: {reason}");
        LibraryChecks.Convolutions(device, ConvGeometry.Create(batch, inC, h, w, outC, kernel, kernel, stride, same), 63, exact: false);
    }

    [Fact]
    public void CudnnRefusesAsymmetricPaddingWithAReason()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        if (Cudnn.TryLoad(out string? reason) is null) Assert.Skip($"cuDNN not installed: {reason}");
        LibraryChecks.RefusesAsymmetricPadding(device);
    }

    [Fact]
    public void CudnnBatchNormBackwardTakesTheForwardsEpsilon()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        if (Cudnn.TryLoad(out string? reason) is null) Assert.Skip($"cuDNN not installed: {reason}");
        LibraryChecks.BatchNormBackwardTakesTheForwardsEpsilon(device);
    }

    [Fact]
    public void InfoReportsTheGpuAndItsLibraries()
    {
        CudaInfoReport report = CudaInfo.Collect();
        if (!report.CudaAvailable) Assert.Skip(report.CudaUnavailableReason!);
        Assert.NotEmpty(report.Gpus);
        Assert.All(report.Gpus, g => Assert.True(g.Multiprocessors > 0 && g.TotalMemoryBytes > 0 && g.ComputeMajor >= 5));
        Assert.NotNull(report.DriverVersion);
        Assert.NotEmpty(report.PtxFiles);
        Assert.Contains("GPU 0: ", report.ToText());
        // The cards this project targets (Hopper and Ampere) have a known FP32 peak: a clock between 0.5 and 4 GHz.
        Assert.All(report.Gpus, g => Assert.True(g.ClockKHz is > 500_000 and < 4_000_000, $"GPU {g.Ordinal}: clock {g.ClockKHz} kHz"));
        Assert.All(report.Gpus.Where(g => g.ComputeMajor is 8 or 9), g => Assert.NotNull(g.Fp32PeakGflops));
    }

    [Fact]
    public void DriverErrorsBecomeCudaExceptions()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        // Far more memory than any GPU has: the allocation fails as out of device memory (the bytes
        // asked for and free), and the driver's own error (cuMemAlloc_v2, its name and text) is inside.
        var oom = Assert.Throws<DeviceMemoryException>(() => device.Allocate<float>(1L << 42));
        Assert.Equal(4L << 42, oom.RequestedBytes);
        Assert.InRange(oom.FreeBytes, 1, oom.TotalBytes);
        var e = Assert.IsType<CudaException>(oom.InnerException);
        Assert.Equal("cuMemAlloc_v2", e.ApiName);
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", e.ErrorName);
        Assert.False(string.IsNullOrWhiteSpace(e.ErrorText));
    }

    [Fact]
    public void BadPtxSurfacesTheJitLog()
    {
        var driver = CudaDriver.TryLoad(out string? reason);
        if (driver is null) Assert.Skip($"CUDA unavailable: {reason}");
        using var device = TestDevices.OpenGpuOrSkip();
        var e = Assert.Throws<CudaException>(() =>
            driver.ModuleLoadData(".version 7.5\n.target sm_80\n.address_size 64\n.visible .entry broken() { bogus; }\n"u8, "broken.ptx", out _));
        Assert.Equal("cuModuleLoadDataEx", e.ApiName);
        Assert.Equal("broken.ptx", e.Context);
    }

    [Fact]
    public void ProfilerStartStopAndNvtxRangesWorkWithoutAProfiler()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        var profiler = new StepProfiler(device, ProfileSteps.Parse("1:2"));
        using var buffer = device.Allocate<float>(1024);
        for (long step = 1; step <= 3; step++)
        {
            profiler.BeginStep(step);
            using (Nvtx.Range(NvtxPhase.Step)) buffer.Fill(step);
            profiler.EndStep(step);
        }
        Assert.False(profiler.Active);
        Assert.All(buffer.ToArray(), v => Assert.Equal(3f, v));
    }

    [Fact]
    public void BuffersCanBeDisposedFromAnotherThread()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        var buffer = device.Allocate<float>(256);
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try { buffer.Dispose(); }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        Assert.Null(failure);
        Assert.Throws<ObjectDisposedException>(() => _ = buffer.Pointer);
    }

    [Fact]
    public void EventsTimeGpuWork()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        using var start = device.CreateEvent();
        using var end = device.CreateEvent();
        using var buffer = device.Allocate<float>(1 << 24);
        start.Record(device.Stream);
        buffer.Fill(1f);
        end.Record(device.Stream);
        float ms = end.ElapsedMillisecondsSince(start);
        Assert.True(ms > 0 && ms < 10_000, $"elapsed {ms} ms");
    }

    [Fact]
    public void CudnnLoadsAndReportsAVersionWhenPresent()
    {
        using var device = TestDevices.OpenGpuOrSkip();
        var cudnn = Cudnn.TryLoad(out string? reason);
        if (cudnn is null) Assert.Skip($"cuDNN not installed: {reason}");
        Assert.True(cudnn.Version() >= 90000, $"cuDNN version {cudnn.Version()}");
        nint handle = cudnn.Create();
        try
        {
            nint x = cudnn.CreateTensor4d(2, 3, 8, 8), w = cudnn.CreateFilter4d(4, 3, 3, 3), conv = cudnn.CreateConvolution2d(1, 1, 1, 1);
            Assert.Equal((2, 4, 8, 8), cudnn.ForwardOutputDim(conv, x, w));
            nint y = cudnn.CreateTensor4d(2, 4, 8, 8);
            Span<CudnnAlgorithmPerformance> results = stackalloc CudnnAlgorithmPerformance[8];
            int count = cudnn.GetAlgorithms(ConvolutionDirection.Forward, handle, x, w, conv, y, results);
            Assert.True(count > 0);
            Assert.True(cudnn.WorkspaceSize(ConvolutionDirection.Forward, handle, x, w, conv, y, results[0].Algorithm) >= 0);
            cudnn.DestroyTensor(y);
            cudnn.DestroyConvolution(conv);
            cudnn.DestroyFilter(w);
            cudnn.DestroyTensor(x);
        }
        finally
        {
            cudnn.Destroy(handle);
        }
    }
}
