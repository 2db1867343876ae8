using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Kernels;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

/// <summary>The first kernels and the runtime on the host emulator (runs everywhere).</summary>
public sealed class EmulatorKernelTests
{
    [Theory]
    [InlineData(1, 1, 11)]
    [InlineData(1000, 1, 12)]
    [InlineData(4099, 2, 13)]
    [InlineData(300_000, 2, 14)]
    public void Axpy(int n, int variant, int seed)
    {
        using var device = TestDevices.OpenEmulator();
        KernelChecks.Axpy(device, n, variant, seed);
    }

    [Theory]
    [InlineData(1, 1, 21)]
    [InlineData(255, 1, 22)]
    [InlineData(70_001, 1, 23)]
    [InlineData(1, 2, 24)]
    [InlineData(1000, 2, 25)]
    [InlineData(70_001, 2, 26)]
    public void Sum(int n, int variant, int seed)
    {
        using var device = TestDevices.OpenEmulator();
        KernelChecks.Sum(device, n, variant, seed);
    }

    [Theory]
    [InlineData(1, 31)]
    [InlineData(256, 32)]
    [InlineData(257, 33)]
    [InlineData(10_000, 34)]
    public void Scan(int n, int seed)
    {
        using var device = TestDevices.OpenEmulator();
        KernelChecks.Scan(device, n, seed);
    }

    [Theory]
    [InlineData(1, 41)]
    [InlineData(5000, 42)]
    public void Adam(int n, int seed)
    {
        using var device = TestDevices.OpenEmulator();
        KernelChecks.Adam(device, n, seed);
    }

    [Fact]
    public void AdamMultiTensor()
    {
        // adam.cu's struct AdamTensor is 40 bytes: four pointers, then a 64-bit length.
        Assert.Equal(40, System.Runtime.CompilerServices.Unsafe.SizeOf<AdamTensorRecord>());
        using var device = TestDevices.OpenEmulator();
        KernelChecks.AdamMulti(device, 43);
    }

    [Fact]
    public void GraphReplayEqualsDirectLaunches()
    {
        using var device = TestDevices.OpenEmulator();
        KernelChecks.GraphReplay(device, 51);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Gemm(bool transposeA, bool transposeB)
    {
        using var device = TestDevices.OpenEmulator();
        KernelChecks.Gemm(device, transposeA, transposeB, 61);
    }

    [Theory]
    [InlineData(false, false, 0f)]
    [InlineData(true, false, 0.25f)]
    [InlineData(false, true, 0f)]
    [InlineData(true, true, -1f)]
    public void BatchedGemmIsTheCpuBackendsBitForBit(bool transposeA, bool transposeB, float beta)
    {
        using var device = TestDevices.OpenEmulator();
        LibraryChecks.GemmAgainstCpu(device, transposeA, transposeB, beta, 62, exact: true);
    }

    [Theory]
    [InlineData(2, 3, 9, 9, 4, 3, 1, true)]
    [InlineData(3, 2, 9, 9, 5, 3, 2, true)]    // TF 'same' with stride 2 on an odd size: symmetric padding
    [InlineData(2, 4, 7, 6, 3, 2, 1, false)]
    public void ConvolutionsAreTheCpuBackendsBitForBit(int batch, int inC, int h, int w, int outC, int kernel, int stride, bool same)
    {
        using var device = TestDevices.OpenEmulator();
        LibraryChecks.Convolutions(device, ConvGeometry.Create(batch, inC, h, w, outC, kernel, kernel, stride, same), 63, exact: true);
    }

    /// <summary>The emulator's stand-in refuses what cuDNN refuses, so the backend's fallback to our kernels runs in CI.</summary>
    [Fact]
    public void ConvolutionsRefuseAsymmetricPaddingAsCudnnDoes()
    {
        using var device = TestDevices.OpenEmulator();
        LibraryChecks.RefusesAsymmetricPadding(device);
    }

    [Fact]
    public void BatchNormBackwardTakesTheForwardsEpsilon()
    {
        using var device = TestDevices.OpenEmulator();
        LibraryChecks.BatchNormBackwardTakesTheForwardsEpsilon(device);
    }

    [Fact]
    public void ConvolutionOperandsAreLengthChecked()
    {
        using var device = TestDevices.OpenEmulator();
        var g = ConvGeometry.Create(2, 3, 8, 8, 4, 3, 3, 1, true);
        using var x = device.Allocate<float>(g.InputLength);
        using var w = device.Allocate<float>(g.WeightLength - 1);
        using var y = device.Allocate<float>(g.OutputLength);
        var e = Assert.Throws<ArgumentException>(() => device.ConvForward(device.Stream, g, x, w, y));
        Assert.Contains($"operand w has {g.WeightLength - 1} elements, expected at least {g.WeightLength}", e.Message);
    }
}

/// <summary>Runtime behaviour on the emulator: checks, errors and lifetimes.</summary>
public sealed class EmulatorRuntimeTests
{
    [Fact]
    public void BuffersAreAlignedTo256BytesAndPoisoned()
    {
        using var device = TestDevices.OpenEmulator();
        using var a = device.Allocate<float>(3);
        using var b = device.Allocate<int>(1000);
        Assert.Equal(0UL, a.Pointer % 256);
        Assert.Equal(0UL, b.Pointer % 256);
        Assert.All(a.ToArray(), v => Assert.True(float.IsNaN(v)));
        Assert.All(b.ToArray(), v => Assert.Equal(-1, v));
    }

    [Fact]
    public void CopiesRoundTripAndFillSetsEveryElement()
    {
        using var device = TestDevices.OpenEmulator();
        var random = new Random(71);
        float[] data = TestDevices.RandomFloats(random, 1000);
        using var a = TestDevices.Upload(device, data);
        using var b = TestDevices.Poisoned(device, 1000);
        a.CopyTo(b, 600, sourceOffset: 100, destinationOffset: 400);
        float[] result = b.ToArray();
        Assert.All(result[..400], v => Assert.True(float.IsNaN(v)));
        Assert.Equal(data[100..700], result[400..]);
        b.Fill(3.25f);
        Assert.All(b.ToArray(), v => Assert.Equal(3.25f, v));
        using var ints = device.Allocate<int>(17);
        ints.Fill(-123456);
        Assert.All(ints.ToArray(), v => Assert.Equal(-123456, v));
    }

    [Fact]
    public void CopiesCheckLengthsAndSayWhatDidNotFit()
    {
        using var device = TestDevices.OpenEmulator();
        using var a = device.Allocate<float>(10);
        using var b = device.Allocate<float>(5);
        var up = Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyFrom(new float[11]));
        Assert.Contains("11 element(s) at offset 0 does not fit a buffer of 10 Single elements", up.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyFrom(new float[5], 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyTo(new float[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyTo(b, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyTo(b, 5, sourceOffset: 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.PointerAt(11));
        using var doubles = device.Allocate<double>(2);
        Assert.Throws<NotSupportedException>(() => doubles.Fill(1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => device.Allocate<float>(-1));
    }

    [Fact]
    public void DisposedBufferRefusesUse()
    {
        using var device = TestDevices.OpenEmulator();
        var a = device.Allocate<float>(4);
        a.Dispose();
        a.Dispose();   // idempotent
        Assert.Throws<ObjectDisposedException>(() => a.CopyFrom(new float[4]));
        Assert.Throws<ObjectDisposedException>(() => _ = a.Pointer);
    }

    [Fact]
    public void WrongArgumentCountIsAnExceptionNamingTheKernel()
    {
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("axpy.ptx");
        Kernel axpy = module.GetKernel("axpy_v1");
        using var x = device.Allocate<float>(4);
        var e = Assert.Throws<CudaException>(() => axpy.Launch(1, 32, 0, device.Stream, 4, 2f, x.Pointer));
        Assert.Contains("axpy_v1", e.Message);
        Assert.Equal("laperm_emu_launch", e.ApiName);
    }

    [Fact]
    public void WrongArgumentSizeIsAnExceptionNamingTheKernelAndParameter()
    {
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("axpy.ptx");
        Kernel axpy = module.GetKernel("axpy_v1");
        using var x = device.Allocate<float>(4);
        using var y = device.Allocate<float>(4);
        // n is an int; a long long would make a GPU read four bytes past the value.
        var e = Assert.Throws<CudaException>(() => axpy.Launch(1, 32, 0, device.Stream, 4L, 2f, x.Pointer, y.Pointer));
        Assert.Contains("axpy_v1: parameter 0 is 4 bytes, the launch passed 8", e.Message);
        // The same launch with the right sizes runs.
        axpy.Launch(1, 32, 0, device.Stream, 4, 2f, x.Pointer, y.Pointer);
    }

    [Fact]
    public unsafe void PointerOutsideDeviceMemoryIsAnExceptionNamingTheKernel()
    {
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("axpy.ptx");
        Kernel axpy = module.GetKernel("axpy_v1");
        using var x = device.Allocate<float>(8);
        float[] host = new float[8];
        fixed (float* notDeviceMemory = host)
        {
            // A host pointer passed as a device pointer: the emulator's argument check must catch it.
            ulong hostAddress = (ulong)notDeviceMemory;
            var e = Assert.Throws<CudaException>(() => axpy.Launch(1, 8, 0, device.Stream, 8, 2f, x.Pointer, hostAddress));
            Assert.Contains("axpy_v1", e.Message);
            Assert.Equal("laperm_emu_launch", e.ApiName);
        }
    }

    [Fact]
    public void UnknownKernelIsAnExceptionListingWhatExists()
    {
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("axpy.ptx");
        var e = Assert.Throws<CudaException>(() => module.GetKernel("axpy_v99"));
        Assert.Contains("axpy_v99", e.Message);
        Assert.Contains("axpy_v1", e.Message);
    }

    [Fact]
    public void LaunchDoesNotAllocate()
    {
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("axpy.ptx");
        Kernel axpy = module.GetKernel("axpy_v1");
        using var x = device.Allocate<float>(64);
        using var y = device.Allocate<float>(64);
        x.Fill(1f);
        y.Fill(0f);
        DeviceStream stream = device.Stream;
        axpy.Launch(1, 64, 0, stream, 64, 2f, x.Pointer, y.Pointer);
        // The fewest bytes of three windows of 100 launches: an allocation in the launch path shows in
        // every window; the runtime's own one-off work on this thread (seen once, under the sanitizer
        // with the whole suite running: 1,192 bytes, no multiple of 100) shows in one at most.
        long fewest = long.MaxValue;
        for (int window = 0; window < 3; window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++) axpy.Launch(1, 64, 0, stream, 64, 2f, x.Pointer, y.Pointer);
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, fewest);
        Assert.All(y.ToArray(), v => Assert.Equal(602f, v));
    }

    /// <summary>
    /// As the driver: a call the capture refuses fails (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED) and
    /// invalidates the capture, every later call on the stream fails (..._INVALIDATED), and ending
    /// the capture gives no graph but leaves the stream usable.
    /// </summary>
    [Fact]
    public void ARefusedCallInvalidatesTheCaptureUntilItEnds()
    {
        using var device = TestDevices.OpenEmulator();
        using var stream = device.CreateStream();
        using var a = device.Allocate<float>(4);
        using var kernels = new PrimitiveKernels(device);
        stream.BeginCapture();
        var refused = Assert.Throws<CudaException>(() => a.CopyFrom(new float[4], stream));
        Assert.Equal(900, refused.ErrorCode);
        Assert.Contains("cannot be captured", refused.Message);
        var later = Assert.Throws<CudaException>(() => kernels.Axpy(stream, 4, 1f, a, a));
        Assert.Equal(901, later.ErrorCode);
        Assert.Contains("a host-to-device copy", later.Message);
        var ended = Assert.Throws<CudaException>(() => stream.EndCapture());
        Assert.Equal(901, ended.ErrorCode);
        // Out of capture mode: the same work runs.
        a.CopyFrom([1f, 2f, 3f, 4f], stream);
        kernels.Axpy(stream, 4, 1f, a, a);
        Assert.Equal([2f, 4f, 6f, 8f], a.ToArray());
    }

    /// <summary>Only the thread that began a (thread-local) capture may end it; calls that would wait or allocate on that thread invalidate it.</summary>
    [Fact]
    public void ACaptureEndsOnItsOwnThreadAndRefusesWaitsAndAllocations()
    {
        using var device = TestDevices.OpenEmulator();
        using var stream = device.CreateStream();
        stream.BeginCapture();
        Exception? fromOtherThread = null;
        var other = new Thread(() =>
        {
            try { stream.EndCapture().Dispose(); }
            catch (Exception e) { fromOtherThread = e; }
        });
        other.Start();
        other.Join();
        Assert.Equal(908, Assert.IsType<CudaException>(fromOtherThread).ErrorCode);
        stream.EndCapture().Dispose();   // still capturing, and still valid

        stream.BeginCapture();
        Assert.Equal(900, Assert.Throws<CudaException>(() => device.Allocate<float>(4)).ErrorCode);
        Assert.Equal(901, Assert.Throws<CudaException>(() => stream.EndCapture()).ErrorCode);
        using var afterwards = device.Allocate<float>(4);   // no capture: allowed again
    }

    [Fact]
    public void EventsMeasureElapsedTime()
    {
        using var device = TestDevices.OpenEmulator();
        using var start = device.CreateEvent();
        using var end = device.CreateEvent();
        start.Record(device.Stream);
        using var kernels = new PrimitiveKernels(device);
        using var x = TestDevices.Upload(device, TestDevices.RandomFloats(new Random(81), 100_000));
        using var y = TestDevices.Upload(device, TestDevices.RandomFloats(new Random(82), 100_000));
        kernels.Axpy(device.Stream, 100_000, 1f, x, y);
        end.Record(device.Stream);
        float ms = end.ElapsedMillisecondsSince(start);
        Assert.True(ms > 0 && ms < 60_000, $"elapsed {ms} ms");
    }

    [Fact]
    public void InfoListsTheEmulatorKernels()
    {
        CudaInfoReport report = CudaInfo.Collect();
        Assert.True(report.Emulator.Found, report.Emulator.Problem);
        Assert.Contains("axpy_v1", report.EmulatorKernels);
        Assert.Contains("Emulator: ", report.ToText());
    }

    [Fact]
    public void StepProfilerIsANoOpOnTheEmulator()
    {
        using var device = TestDevices.OpenEmulator();
        var profiler = new StepProfiler(device, ProfileSteps.Parse("2:3"));
        for (long step = 1; step <= 4; step++)
        {
            profiler.BeginStep(step);
            Assert.Equal(step is 2 or 3, profiler.Active);
            profiler.EndStep(step);
        }
        Assert.False(profiler.Active);
    }

    /// <summary>A resumed run begins after step 1: inside the range, the capture starts at its first step and says which ran before.</summary>
    [Theory]
    [InlineData(3, "step 2 ran before the checkpoint this run resumes from; the capture covers steps 3 to 5")]
    [InlineData(4, "steps 2 to 3 ran before the checkpoint this run resumes from; the capture covers steps 4 to 5")]
    [InlineData(7, "ran before the checkpoint this run resumes from (its first step is 7); nothing will be captured")]
    [InlineData(2, null)]
    [InlineData(1, null)]
    public void StepProfilerOfAResumedRunCapturesWhatIsLeftOfTheRange(long firstStep, string? note)
    {
        using var device = TestDevices.OpenEmulator();
        var notes = new StringWriter();
        var profiler = new StepProfiler(device, ProfileSteps.Parse("2:5"), notes);
        for (long step = firstStep; step <= 8; step++)
        {
            profiler.BeginStep(step);
            Assert.Equal(step >= Math.Max(2, firstStep) && step <= 5, profiler.Active);
            profiler.EndStep(step);
        }
        Assert.False(profiler.Active);
        if (note is null) Assert.Equal("", notes.ToString());
        else Assert.Contains(note, notes.ToString());
    }

    [Fact]
    public void StepProfilerOfARunThatRanNoStepSaysNothingWasCaptured()
    {
        using var device = TestDevices.OpenEmulator();
        var notes = new StringWriter();
        new StepProfiler(device, ProfileSteps.Parse("2:5"), notes).Finish();
        Assert.Contains("--profile-steps 2:5: this run ran no step (it resumed after its last one): nothing was captured.", notes.ToString(), StringComparison.Ordinal);
        var ran = new StepProfiler(device, ProfileSteps.Parse("2:5"), notes = new StringWriter());
        ran.BeginStep(1);
        ran.EndStep(1);
        ran.Finish();
        Assert.Equal("", notes.ToString());
    }
}

public sealed class EmulatorSanitizerTests
{
    /// <summary>
    /// LAPERM_EMU_LIBRARY picks the emulator build (the test command's sanitized pass names the
    /// AddressSanitizer one): a path that is missing or no library must fail with its name, never
    /// fall back to the plain emulator beside the assembly, which would pass that pass unsanitized.
    /// </summary>
    [Fact]
    public void AnEmulatorLibraryOverrideThatCannotBeLoadedFailsInsteadOfFallingBack()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"laperm-no-emu-{Guid.NewGuid():N}.so");
        Assert.Null(EmulatorLibrary.TryLoad(missing, out string? reason));
        Assert.Equal($"LAPERM_EMU_LIBRARY names '{missing}', which does not exist", reason);

        string notALibrary = Path.Combine(Path.GetTempPath(), $"laperm-not-emu-{Guid.NewGuid():N}.so");
        File.WriteAllText(notALibrary, "not an ELF file");
        try
        {
            Assert.Null(EmulatorLibrary.TryLoad(notALibrary, out reason));
            Assert.StartsWith($"LAPERM_EMU_LIBRARY names '{notALibrary}', which cannot be loaded: ", reason, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(notALibrary);
        }

        // An override that loads is the library used (here the one this run uses already).
        EmulatorLibrary current = EmulatorLibrary.TryLoad(out reason) ?? throw new InvalidOperationException(reason);
        Assert.Equal(current.Library.Path, EmulatorLibrary.TryLoad(current.Library.Path, out reason)?.Library.Path);
        Assert.Null(reason);
    }

    [Fact]
    public void AReadPastTheEndOfABufferFailsTheLaunchInTheSanitizedEmulatorOnly()
    {
        // x has 7 floats, the launch reads 8 (a GPU would return a neighbour's bytes or fault). The
        // plain emulator cannot see a read; its AddressSanitizer build (the test command's second
        // pass over these tests) fails the launch with the access and the kernel's source line.
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("elementwise.ptx");
        Kernel scaleAdd = module.GetKernel("scale_add_v1");
        using var x = device.Allocate<float>(7);
        using var y = device.Allocate<float>(8);
        void Launch() => scaleAdd.Launch(1, 32, 0, device.Stream, 8L, 2f, x.Pointer, y.Pointer);
        string sanitizers = EmulatorLibrary.TryLoad(out string? reason)?.Sanitizers ?? throw new InvalidOperationException(reason);
        if (sanitizers.Contains("address", StringComparison.Ordinal))
        {
            var e = Assert.Throws<CudaException>(Launch);
            Assert.Contains("kernel 'scale_add_v1' (grid (1,1,1), block (32,1,1)): an access outside its memory; AddressSanitizer:", e.Message);
            Assert.Contains("READ of size 4", e.Message);
            Assert.Contains("elementwise.cu:", e.Message);
        }
        else
        {
            Launch();
        }
    }
}

/// <summary>
/// Writes past the end of a buffer on purpose. The emulator checks every guarded buffer of the
/// process after each launch, so these run alone: a launch of a test running beside them could
/// otherwise find the broken guard first.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EmulatorGuardCollection
{
    public const string Name = "EmulatorGuards";
}

[Collection(EmulatorGuardCollection.Name)]
public sealed class EmulatorGuardTests
{
    [Fact]
    public void AWritePastTheEndOfABufferIsAnExceptionNamingTheKernelAndTheBuffer()
    {
        // y has 7 floats, the launch says 8: on a GPU the eighth write lands in a neighbour (or faults).
        using var device = TestDevices.OpenEmulator();
        using var module = device.LoadModule("axpy.ptx");
        Kernel axpy = module.GetKernel("axpy_v1");
        using var x = device.Allocate<float>(8);
        using var y = device.Allocate<float>(7);
        var e = Assert.Throws<CudaException>(() => axpy.Launch(1, 32, 0, device.Stream, 8, 2f, x.Pointer, y.Pointer));
        Assert.Contains("kernel 'axpy_v1' (grid (1,1,1), block (32,1,1)): a write past the end of the 28-byte device buffer", e.Message);
        Assert.Contains("byte 28, 0 past its end", e.Message);
        // Inside the buffer, the same kernel runs.
        axpy.Launch(1, 32, 0, device.Stream, 7, 2f, x.Pointer, y.Pointer);
    }
}
