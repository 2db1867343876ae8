using LaPerm.Core.Backend;
using LaPerm.Core.Model;
using LaPerm.Cpu;
using LaPerm.Cuda;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Reconnect;

namespace LaPerm.Cli;

/// <summary>
/// Creates the backend named by --device: cpu, cuda (GPU 0), cuda:N (GPU N, as `laperm info`
/// numbers them), emu (the GPU kernels on the host emulator) or auto (cuda when a usable GPU is
/// found, else cpu).
/// </summary>
internal static class Backends
{
    /// <summary>What --device takes, as the errors say it.</summary>
    public const string DeviceChoices = "cpu, cuda, cuda:N (GPU N), emu or auto";

    /// <summary>
    /// A --device value as the run records it ("cuda:N" with N written plainly), or a usage error
    /// naming the choices (and <paramref name="flag"/>, when the value came from one).
    /// </summary>
    public static string ParseDevice(string value, string? flag = "--device")
    {
        if (value is "cpu" or "cuda" or "emu" or "auto") return value;
        if (GpuOrdinal(value) is int ordinal) return $"cuda:{ordinal.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        throw new UsageException(flag is null ? $"expected {DeviceChoices}, got '{value}'." : $"{flag} expects {DeviceChoices}, got '{value}'.");
    }

    /// <summary>The GPU a device value opens: 0 for cuda, N for cuda:N (digits only), null for anything else.</summary>
    public static int? GpuOrdinal(string device) =>
        device == "cuda" ? 0
        : device.StartsWith("cuda:", StringComparison.Ordinal) && device.Length > 5
          && int.TryParse(device.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int ordinal) ? ordinal
        : null;

    /// <summary>cuda or cuda:N: a GPU (emu is not).</summary>
    public static bool IsGpu(string device) => GpuOrdinal(device) is not null;

    /// <param name="warnings">Where auto says that it found a GPU it cannot use (null: nowhere).</param>
    public static IBackend Create(string device, int threads, GpuOptions? gpu = null, TextWriter? warnings = null) => ParseDevice(device) switch
    {
        "cpu" => new CpuBackend(threads),
        "auto" => Auto(threads, CudaInfo.Collect().CudaAvailable, () => OpenCuda("cuda", gpu ?? GpuOptions.Default), warnings),
        var kind => OpenDevice(kind, gpu ?? GpuOptions.Default),   // emu, cuda, cuda:N
    };

    /// <summary>cuda when the driver finds a GPU and the backend opens on it (kernels, cuBLAS), else cpu.</summary>
    internal static IBackend Auto(int threads, bool gpuFound, Func<IBackend> openGpu, TextWriter? warnings)
    {
        if (gpuFound)
        {
            try
            {
                return openGpu();
            }
            catch (Exception e) when (e is InvalidOperationException or LaPerm.Cuda.Interop.CudaException or LaPerm.Cuda.Runtime.DeviceMemoryException)
            {
                // A GPU without a usable CUDA stack (no cuBLAS, a driver too old for our PTX, no memory
                // left for the backend's own buffers): train on the CPU instead, and say
                // so: a run meant for the GPU that silently takes hours on the CPU is worse than a line.
                warnings?.WriteLine($"laperm: warning: --device auto found a GPU but cannot use it ({CommandLine.OneLine(e.Message).TrimEnd('.')}); running on the CPU.");
            }
        }
        return new CpuBackend(threads);
    }

    private static CudaBackend OpenCuda(string kind, GpuOptions gpu) =>
        CudaBackend.Open(kind, gpu.Math, gpu.Cudnn, gpu.ChannelReduction, gpu.ReconnectVariant);

    private static CudaBackend OpenDevice(string kind, GpuOptions gpu)
    {
        try
        {
            return OpenCuda(kind, gpu);
        }
        catch (InvalidOperationException e)
        {
            throw new UsageException($"--device {kind} is unavailable here: {e.Message}");
        }
    }

    /// <summary>--math fp32|tf32, --cudnn none|all|conv,pool,bn, --channel-reduction chunked|per-channel and --reconnect-variant N (GPU backends only).</summary>
    public static GpuOptions Gpu(Arguments a) =>
        Gpu(a.String("--math"), a.String("--cudnn"), a.String("--channel-reduction"), ReconnectVariantFlag(a));

    /// <summary>
    /// The warning for GPU-only flags given to a run on the cpu (which ignores them), or for
    /// --math tf32 on emu (whose GEMMs run on the host in FP32), or null. A command that takes
    /// them accepts them on every device, so a script runs on any machine.
    /// </summary>
    public static string? IgnoredGpuFlags(Arguments a, string device)
    {
        if (device == "emu" && a.String("--math") == "tf32")
            return "--math tf32 chooses cuBLAS's TF32 tensor cores (--device cuda); emu runs its GEMMs on the host in FP32 and ignores it.";
        string[] given = [.. new[] { "--math", "--cudnn", "--channel-reduction", "--reconnect-variant", "--no-graphs" }.Where(a.Has)];
        return device != "cpu" || given.Length == 0 ? null
            : $"{string.Join(", ", given)} appl{(given.Length == 1 ? "ies" : "y")} to the GPU backends (--device cuda or emu); the cpu backend ignores {(given.Length == 1 ? "it" : "them")}.";
    }

    /// <summary>The warning for --threads given to a GPU backend (it sizes the cpu backend's workers only), or null.</summary>
    public static string? IgnoredCpuFlags(Arguments a, string device) =>
        (device == "emu" || IsGpu(device)) && a.Has("--threads") ? $"--threads sizes the cpu backend; {device} ignores it." : null;

    /// <summary>--reconnect-variant N (null: the dispatcher).</summary>
    public static int? ReconnectVariantFlag(Arguments a) => a.Int("--reconnect-variant", 0, (int)Enum.GetValues<ReconnectVariant>().Max());

    /// <summary>The same from the flags' values (null: the default), e.g. those a run recorded.</summary>
    public static GpuOptions Gpu(string? math, string? cudnn, string? channelReduction, int? reconnectVariant) => new(
        math switch
        {
            null or "fp32" => GemmMath.Pedantic,
            "tf32" => GemmMath.Tf32,
            var m => throw new UsageException($"--math expects fp32 or tf32, got '{m}'."),
        },
        ParseCudnnScope(cudnn),
        channelReduction switch
        {
            null or "chunked" => ChannelReduction.Chunked,
            "per-channel" => ChannelReduction.PerChannel,
            var r => throw new UsageException($"--channel-reduction expects chunked or per-channel, got '{r}'."),
        },
        (ReconnectVariant)(reconnectVariant ?? 0));

    /// <summary>"none", "all" or a comma list of conv, pool, bn (each at most once).</summary>
    public static CudnnScope ParseCudnnScope(string? value)
    {
        const string expected = "none, all or a comma list of conv, pool, bn";
        if (value is null or "none") return CudnnScope.None;
        if (value == "all") return CudnnScope.All;
        var scope = CudnnScope.None;
        foreach (string part in value.Split(','))
        {
            CudnnScope family = part.Trim() switch
            {
                "conv" => CudnnScope.Convolution,
                "pool" => CudnnScope.Pooling,
                "bn" => CudnnScope.BatchNorm,
                _ => throw new UsageException($"--cudnn expects {expected}, got '{value}' ('{part}' is not one of them)."),
            };
            if ((scope & family) != 0) throw new UsageException($"--cudnn names '{part.Trim()}' twice in '{value}'.");
            scope |= family;
        }
        return scope;
    }

    /// <summary>
    /// With --cudnn: one line per shape cuDNN refused (our kernels ran it), and why cuDNN is off
    /// if it was dropped as a whole (at the start, or at first use after the run's description
    /// was printed), so a timing or a result says what ran.
    /// </summary>
    public static void ReportCudnnRefusals(IBackend backend, TextWriter stdout)
    {
        if (backend is not CudaBackend cuda) return;
        if (cuda.CudnnUnavailableReason is { } off)
            stdout.WriteLine($"  cuDNN was asked for and is off ({off}); our kernels ran in its place.");
        if (cuda.CudnnRefusals.Count == 0) return;
        stdout.WriteLine($"  cuDNN refused {cuda.CudnnRefusals.Count} shape(s); our kernels ran them:");
        foreach (string reason in cuda.CudnnRefusals) stdout.WriteLine($"    {reason}");
    }

    /// <summary>
    /// The model of a weights file: --model when given, else the one its metadata records (the
    /// whole description, or a built-in's name), else a usage error asking for --model.
    /// </summary>
    public static ModelSpec ModelOfWeights(Arguments a, string weights, IReadOnlyDictionary<string, string> metadata) =>
        a.String("--model") is { } m ? ResolveModel(m)
        : metadata.GetValueOrDefault("model_spec") is { } json ? ModelDefinition.ParseSpec(json, $"the model recorded in weights file '{weights}'")
        : metadata.GetValueOrDefault("model") is { } name
            ? BuiltInModels.TryGet(name) ?? throw new UsageException($"weights file '{weights}' names model '{name}', which is not built in, and records no description of it; pass --model.")
        : throw new UsageException($"weights file '{weights}' records no model; pass --model.");

    /// <summary>A file the command reads: a usage error naming it when it is missing or a directory.</summary>
    public static string RequireFile(string path, string what) =>
        File.Exists(path) ? path
        : Directory.Exists(path) ? throw new UsageException($"{what} '{path}' is a directory; expected a file.")
        : throw new UsageException($"{what} '{path}' does not exist.");

    public static int Threads(Arguments a) => a.Int("--threads", 1, LaPerm.Core.Training.TrainingOptions.MaxThreads) ?? Environment.ProcessorCount;

    /// <summary>
    /// " (did you mean resnet8 or resnet14?)" for a resnetD whose D is not 6n+2 (in range): the
    /// depths on either side, where spelling distance would name resnet20 for resnet9.
    /// </summary>
    private static string? ResNetSuggestion(string name)
    {
        if (!name.StartsWith("resnet", StringComparison.Ordinal) || !int.TryParse(name.AsSpan(6), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int depth))
            return null;
        int below = depth - ((depth - 2) % 6 + 6) % 6, above = below + 6;
        var near = new[] { below, above }.Where(d => d >= 8 && d <= BuiltInModels.MaxResNetDepth).Select(d => $"resnet{d}").ToList();
        return near.Count == 0 ? null : $" (did you mean {string.Join(" or ", near)}?)";
    }

    /// <summary>
    /// A built-in model by name, else a JSON model file: a name with a directory separator or a
    /// .json ending is always a file (./f1 reads a file called f1; f1 is the built-in model).
    /// </summary>
    public static ModelSpec ResolveModel(string name)
    {
        bool pathLike = name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || name.Contains('/') || name.Contains(Path.DirectorySeparatorChar);
        if (!pathLike && BuiltInModels.TryGet(name) is { } builtIn) return builtIn;
        if (Directory.Exists(name)) throw new UsageException($"model file '{name}' is a directory; expected a JSON model file.");
        if (File.Exists(name)) return ModelDefinition.LoadSpec(name);
        if (pathLike) throw new UsageException($"model file '{name}' does not exist.");
        throw new UsageException($"unknown model '{name}'{ResNetSuggestion(name) ?? LaPerm.Core.IO.NameSuggestion.DidYouMean(name, BuiltInModels.Names)}; expected one of {string.Join(", ", BuiltInModels.Names)}, resnetD (D = 6n+2, 1 <= n <= 1000: 8, 14, 20, ..., {BuiltInModels.MaxResNetDepth}) or a JSON model file.");
    }
}

/// <summary>How the GPU backend computes GEMMs, convolutions, per-channel reductions and reconnection (ignored by cpu).</summary>
internal sealed record GpuOptions(GemmMath Math, CudnnScope Cudnn, ChannelReduction ChannelReduction, ReconnectVariant ReconnectVariant)
{
    public static GpuOptions Default { get; } = new(GemmMath.Pedantic, CudnnScope.None, ChannelReduction.Chunked, ReconnectVariant.Auto);
}
