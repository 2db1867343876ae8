using System.Globalization;
using System.Text.Json;
using LaPerm.Core.Backend;
using LaPerm.Core.Training;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Reconnect;

/// <summary>
/// Options of <c>laperm bench reconnect</c>. <paramref name="Variant"/>: "all" or 0..10.
/// <paramref name="PerLaunch"/>: on cuda, each launch's time under its line too (the JSON always has them).
/// <paramref name="Shapes"/>: a set name (conv7, resnet50c, conv13, resnet50-imagenet) or
/// ROWS:LENGTH[,ROWS:LENGTH...]; several separated by ';'. <paramref name="Device"/>: cuda or emu.
/// </summary>
public sealed record ReconnectBenchOptions(string Variant = "all", string Shapes = "conv7", string Device = "cuda",
    int Samples = 15, string? JsonPath = null, int Seed = 1234, bool PerLaunch = false);

/// <summary>One line of the bench: a variant on a shape set; on cuda also each launch's median time.</summary>
public sealed record ReconnectBenchResult(string Shapes, int Variant, long Elements, int Launches, long Mismatches,
    double? MedianMicroseconds, double? EffectiveGBPerSecond, double? CopyGBPerSecond, string Paths = "",
    IReadOnlyList<ReconnectLaunchTime>? LaunchTimes = null);

/// <summary>
/// One launch (a size class) of a variant's plan timed alone: its kernel, rows, longest row,
/// threads and median time. Each launch runs on every copy of the weights in turn, as the line
/// does, but a small class's copies may stay in L2 between samples where the whole set does not.
/// </summary>
public sealed record ReconnectLaunchTime(string Kernel, int Rows, int MaxRowLength, int Threads, double MedianMicroseconds);

/// <summary>
/// Benchmarks the reconnection variants: every line verified bit for bit against
/// <see cref="Reconnection.SyncRow"/> (inputs with ties, -0.0/+0.0 and NaN), then on cuda timed
/// with device events (warmed up, inputs rotated across copies so the working set exceeds L2,
/// median over samples) against the 12 B/element floor (read w, read sorted0, write w) and a
/// device-to-device copy measured in the same run. On emu it verifies only.
/// </summary>
public sealed class ReconnectBench
{
    private const long RotationBytes = 256L << 20;

    /// <summary>Runs the bench, writing one line per variant and shape set; returns 0 when every mismatch count is 0, else 1.</summary>
    public static int Run(ReconnectBenchOptions options, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        // The JSON is rewritten after every line, so a run stopped by a time limit keeps what it measured.
        Action<IReadOnlyList<ReconnectBenchResult>>? progress = options.JsonPath is { Length: > 0 } path
            ? measured => WriteJson(path, measured)
            : null;
        IReadOnlyList<ReconnectBenchResult> results = new ReconnectBench().Measure(options, output, progress);
        if (progress is not null) output.WriteLine($"wrote {options.JsonPath}");
        return results.All(r => r.Mismatches == 0) ? 0 : 1;
    }

    private static void WriteJson(string path, IReadOnlyList<ReconnectBenchResult> results) =>
        LaPerm.Core.IO.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));

    public static IReadOnlyList<ReconnectVariant> ParseVariants(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec == "all") return Enum.GetValues<ReconnectVariant>();
        if (int.TryParse(spec, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && Enum.IsDefined((ReconnectVariant)v))
            return [(ReconnectVariant)v];
        throw new ArgumentException($"--variant: '{spec}' is not a variant; expected \"all\" or a number from 0 to {(int)Enum.GetValues<ReconnectVariant>().Max()}");
    }

    /// <summary>Measures every (shape set, variant); <paramref name="progress"/> sees the results so far after each.</summary>
    public IReadOnlyList<ReconnectBenchResult> Measure(ReconnectBenchOptions options, TextWriter output,
        Action<IReadOnlyList<ReconnectBenchResult>>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        if (options.Samples < 1) throw new ArgumentException($"--samples must be at least 1, got {options.Samples}");
        IReadOnlyList<ReconnectVariant> variants = ParseVariants(options.Variant);
        var sets = options.Shapes.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => (Spec: s, Shapes: ReconnectShapes.Parse(s))).ToList();

        using Device device = Device.Open(options.Device);
        // Once the options are valid and the device is open, before anything is measured: a JSON
        // path that cannot be written fails now, not after the first line (and a bad option leaves
        // an earlier file alone).
        progress?.Invoke([]);
        bool timed = device.Kind == "cuda";
        var limits = ReconnectLimits.For(device);
        using var kernels = new ReconnectKernels(device, limits);
        double? copyGBs = timed ? MeasureCopyBandwidth(device, options.Samples) : null;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"device {device}, shared memory per block {limits.MaxSharedBytesPerBlock} B{(copyGBs is double rate ? $", DtoD copy {rate:F0} GB/s (read+write)" : ", verify only")}"));

        var results = new List<ReconnectBenchResult>();
        foreach (var (spec, shapes) in sets)
        {
            var inputs = BenchInputs.Create(shapes, options.Seed);
            long elements = inputs.Elements;
            int copies = timed ? (int)Math.Clamp(RotationBytes / (8 * elements) + 1, 2, 256) : 1;
            var weights = new List<DeviceBuffer<float>>(copies);
            try
            {
                for (int c = 0; c < copies; c++) weights.Add(device.Allocate<float>(elements));
                foreach (ReconnectVariant variant in variants)
                {
                    var reconnectors = new List<DeviceReconnector>(copies);
                    try
                    {
                        // Tuned: the classes are timed once, on the tuner's own buffers, for every copy.
                        var tuned = variant == ReconnectVariant.Tuned ? ReconnectTuner.Measure(kernels, shapes) : null;
                        foreach (DeviceBuffer<float> w in weights)
                            reconnectors.Add(new DeviceReconnector(kernels, inputs.Targets(w), variant, inputs.Sorted0, tuned));
                        ReconnectBenchResult result = MeasureOne(device, spec, variant, inputs, weights, reconnectors, options.Samples, copyGBs);
                        results.Add(result);
                        output.WriteLine(Format(result));
                        if (options.PerLaunch)
                            foreach (string line in FormatLaunches(result)) output.WriteLine(line);
                        progress?.Invoke(results);
                    }
                    finally
                    {
                        foreach (DeviceReconnector r in reconnectors) r.Dispose();
                    }
                }
            }
            finally
            {
                foreach (DeviceBuffer<float> w in weights) w.Dispose();
            }
        }
        return results;
    }

    private static ReconnectBenchResult MeasureOne(Device device, string spec, ReconnectVariant variant, BenchInputs inputs,
        List<DeviceBuffer<float>> weights, List<DeviceReconnector> reconnectors, int samples, double? copyGBs)
    {
        // Verify on copy 0 from the pristine current weights.
        weights[0].CopyFrom(inputs.Current);
        reconnectors[0].Enqueue(device.Stream);
        float[] got = weights[0].ToArray();
        long mismatches = 0;
        for (long i = 0; i < got.Length; i++)
            if (BitConverter.SingleToUInt32Bits(got[i]) != BitConverter.SingleToUInt32Bits(inputs.Expected[i])) mismatches++;
        int launches = reconnectors[0].Plan.Launches.Count;
        string paths = reconnectors[0].Plan.DescribePaths();
        if (copyGBs is null)
            return new ReconnectBenchResult(spec, (int)variant, inputs.Elements, launches, mismatches, null, null, null, paths);

        for (int c = 1; c < weights.Count; c++) weights[c].CopyFrom(inputs.Current);
        foreach (DeviceReconnector r in reconnectors) r.Enqueue(device.Stream); // warm-up
        using DeviceEvent start = device.CreateEvent();
        using DeviceEvent stop = device.CreateEvent();
        var perPass = new double[samples];
        for (int s = 0; s < samples; s++)
        {
            start.Record(device.Stream);
            foreach (DeviceReconnector r in reconnectors) r.Enqueue(device.Stream);
            stop.Record(device.Stream);
            perPass[s] = stop.ElapsedMillisecondsSince(start) / reconnectors.Count;
        }
        double seconds = TrainStepBench.Median(perPass) * 1e-3;
        return new ReconnectBenchResult(spec, (int)variant, inputs.Elements, launches, mismatches,
            seconds * 1e6, 12.0 * inputs.Elements / seconds / 1e9, copyGBs, paths, MeasureLaunches(device, reconnectors, samples));
    }

    /// <summary>Each launch of the plan alone, over every copy, median of <paramref name="samples"/> (device events between launches).</summary>
    private static List<ReconnectLaunchTime> MeasureLaunches(Device device, List<DeviceReconnector> reconnectors, int samples)
    {
        ReconnectPlan plan = reconnectors[0].Plan;
        var marks = new DeviceEvent[plan.Launches.Count + 1];
        try
        {
            for (int i = 0; i < marks.Length; i++) marks[i] = device.CreateEvent();
            var perLaunch = new double[plan.Launches.Count][];
            for (int i = 0; i < perLaunch.Length; i++) perLaunch[i] = new double[samples];
            for (int s = 0; s < samples; s++)
            {
                for (int i = 0; i < plan.Launches.Count; i++)
                {
                    marks[i].Record(device.Stream);
                    foreach (DeviceReconnector r in reconnectors) r.EnqueueLaunch(i, device.Stream);
                }
                marks[^1].Record(device.Stream);
                for (int i = 0; i < plan.Launches.Count; i++)
                    perLaunch[i][s] = marks[i + 1].ElapsedMillisecondsSince(marks[i]) * 1e3 / reconnectors.Count;
            }
            return [.. plan.Launches.Select((l, i) => new ReconnectLaunchTime(ReconnectPlanner.KernelName(l), l.Rows, l.MaxRowLength, l.Threads,
                TrainStepBench.Median(perLaunch[i])))];
        }
        finally
        {
            foreach (DeviceEvent? e in marks) e?.Dispose();
        }
    }

    /// <summary>The per-launch lines under a timed line (<c>--per-launch</c>): kernel, rows, longest row, threads, median, share of the line.</summary>
    public static IEnumerable<string> FormatLaunches(ReconnectBenchResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.LaunchTimes is null) yield break;
        double total = r.LaunchTimes.Sum(l => l.MedianMicroseconds);
        foreach (ReconnectLaunchTime l in r.LaunchTimes)
            yield return string.Format(CultureInfo.InvariantCulture, "  launch {0,-30} rows {1,7}  <= {2,5}  threads {3,4}  median {4,9:F1} us  {5,5:F1}% of the launches",
                l.Kernel, l.Rows, l.MaxRowLength, l.Threads, l.MedianMicroseconds, total > 0 ? 100 * l.MedianMicroseconds / total : 0);
    }

    private static double MeasureCopyBandwidth(Device device, int samples)
    {
        const long floats = 64L << 20; // 256 MB each way
        using DeviceBuffer<float> a = device.Allocate<float>(floats);
        using DeviceBuffer<float> b = device.Allocate<float>(floats);
        a.Fill(1f);
        using DeviceEvent start = device.CreateEvent();
        using DeviceEvent stop = device.CreateEvent();
        var ms = new double[samples];
        a.CopyTo(b, floats);
        for (int s = 0; s < samples; s++)
        {
            start.Record(device.Stream);
            a.CopyTo(b, floats);
            stop.Record(device.Stream);
            ms[s] = stop.ElapsedMillisecondsSince(start);
        }
        return 2.0 * floats * sizeof(float) / (TrainStepBench.Median(ms) * 1e-3) / 1e9;
    }

    public static string Format(ReconnectBenchResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var ci = CultureInfo.InvariantCulture;
        string head = string.Format(ci, "reconnect {0,-18} variant {1} {2,-17} elements {3,10}  launches {4,2}", r.Shapes, r.Variant,
            ((ReconnectVariant)r.Variant).ToString(), r.Elements, r.Launches);
        string paths = r.Paths.Length == 0 ? "" : $"  [{r.Paths}]";
        if (r.MedianMicroseconds is not double us || r.EffectiveGBPerSecond is not double gbs || r.CopyGBPerSecond is not double copy)
            return head + string.Format(ci, "  mismatches {0}  (emu: verified, not timed)", r.Mismatches) + paths;
        return head + string.Format(ci, "  median {0,9:F1} us  {1,7:F2} Gelem/s  {2,7:F1} GB/s  {3,5:F1}% of copy  floor x{4:F2}  mismatches {5}",
            us, r.Elements / us / 1e3, gbs, 100 * gbs / copy, copy / gbs, r.Mismatches) + paths;
    }
}

/// <summary>
/// Deterministic bench inputs: initial rows (sorted into sorted0), current weights with ties,
/// -0.0/+0.0 and NaNs of both signs, and the expected result of <see cref="Reconnection.SyncRow"/>.
/// </summary>
internal sealed class BenchInputs
{
    private BenchInputs(IReadOnlyList<ReconnectShape> shapes, float[] sorted0, float[] current, float[] expected)
    {
        Shapes = shapes;
        Sorted0 = sorted0;
        Current = current;
        Expected = expected;
    }

    public IReadOnlyList<ReconnectShape> Shapes { get; }
    public float[] Sorted0 { get; }
    public float[] Current { get; }
    public float[] Expected { get; }
    public long Elements => Current.LongLength;

    public List<DeviceReconnectTarget> Targets(DeviceBuffer<float> weights) => DeviceReconnector.TargetsOver(Shapes, weights);

    public static BenchInputs Create(IReadOnlyList<ReconnectShape> shapes, int seed)
    {
        long total = shapes.Sum(s => s.Elements);
        var rng = new Random(seed);
        var sorted0 = new float[total];
        var current = new float[total];
        for (long i = 0; i < total; i++)
        {
            sorted0[i] = Value(rng);
            current[i] = Value(rng);
        }
        var expected = (float[])current.Clone();
        var scratch = new ulong[shapes.Count == 0 ? 0 : shapes.Max(s => s.RowLength)];
        long at = 0;
        foreach (ReconnectShape s in shapes)
            for (int r = 0; r < s.Rows; r++, at += s.RowLength)
            {
                Span<float> initial = sorted0.AsSpan((int)at, s.RowLength);
                Reconnection.SortRow(initial.ToArray(), initial);
                Reconnection.SyncRow(expected.AsSpan((int)at, s.RowLength), initial, scratch);
            }
        return new BenchInputs(shapes, sorted0, current, expected);
    }

    private static float Value(Random rng) => rng.Next(200) switch
    {
        0 => 0.0f,
        1 => -0.0f,
        2 => 0.125f,                                    // a tie shared across the row
        3 => BitConverter.UInt32BitsToSingle(0x7FC00001u), // +NaN
        4 => BitConverter.UInt32BitsToSingle(0xFFC00002u), // -NaN
        _ => (float)(rng.NextDouble() * 2 - 1) * 0.05f,
    };
}
