using LaPerm.Core.Training;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Reconnect;

/// <summary>
/// Chooses, for each of the dispatcher's staged size classes, the fastest of
/// <see cref="ReconnectPlanner.TunedCandidates"/> on this device (<see cref="ReconnectVariant.Tuned"/>):
/// each candidate reconnects the class's rows, on synthetic values in a buffer of its own (the
/// model's weights are never touched, so a resumed run is not synchronised by it), warmed up
/// once and timed with device events, median of <see cref="Samples"/>. Only a GPU is timed: on
/// the emulator the choice is empty and the plan is the dispatcher's.
/// </summary>
public static class ReconnectTuner
{
    public const int Samples = 5;

    /// <summary>Per class the candidate with the least time (the first of equals), given a timer.</summary>
    public static IReadOnlyDictionary<int, ReconnectVariant> Choose(IReadOnlyList<ReconnectShape> shapes, ReconnectLimits limits,
        Func<ReconnectVariant, IReadOnlyList<ReconnectShape>, double> microseconds)
    {
        ArgumentNullException.ThrowIfNull(microseconds);
        var choice = new Dictionary<int, ReconnectVariant>();
        foreach (var (cls, members) in ReconnectPlanner.TunedClasses(shapes, limits))
        {
            IReadOnlyList<ReconnectShape> subset = [.. members.Select(i => shapes[i])];
            ReconnectVariant best = ReconnectPlanner.TunedCandidates[0];
            double bestTime = double.PositiveInfinity;
            foreach (ReconnectVariant candidate in ReconnectPlanner.TunedCandidates)
            {
                double t = microseconds(candidate, subset);
                if (t < bestTime) (best, bestTime) = (candidate, t);
            }
            choice[cls] = best;
        }
        return choice;
    }

    /// <summary>The choice on <paramref name="kernels"/>' device: timed on a GPU, empty elsewhere.</summary>
    public static IReadOnlyDictionary<int, ReconnectVariant> Measure(ReconnectKernels kernels, IReadOnlyList<ReconnectShape> shapes)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        if (kernels.Device.Kind != "cuda") return new Dictionary<int, ReconnectVariant>();
        // Choose passes one subset per class to every candidate: its values are made once.
        var inputs = new Dictionary<IReadOnlyList<ReconnectShape>, (float[] Values, float[] Sorted)>(ReferenceEqualityComparer.Instance);
        return Choose(shapes, kernels.Limits, (candidate, subset) =>
        {
            if (!inputs.TryGetValue(subset, out var made)) inputs[subset] = made = Inputs(subset);
            return Time(kernels, candidate, subset, made.Values, made.Sorted);
        });
    }

    /// <summary>Values spread as initial weights are (uniform), and sorted rows of the same spread.</summary>
    private static (float[] Values, float[] Sorted) Inputs(IReadOnlyList<ReconnectShape> shapes)
    {
        long elements = shapes.Sum(s => s.Elements);
        var values = new float[elements];
        var sorted = new float[elements];
        var rng = new Random(12345);
        long at = 0;
        foreach (ReconnectShape s in shapes)
            for (int r = 0; r < s.Rows; r++, at += s.RowLength)
                for (int i = 0; i < s.RowLength; i++)
                {
                    values[at + i] = (float)(rng.NextDouble() * 2 - 1);
                    sorted[at + i] = -1f + 2f * i / s.RowLength;
                }
        return (values, sorted);
    }

    private static double Time(ReconnectKernels kernels, ReconnectVariant candidate, IReadOnlyList<ReconnectShape> shapes, float[] values, float[] sorted)
    {
        Device device = kernels.Device;
        using DeviceBuffer<float> weights = device.Allocate<float>(values.LongLength);
        weights.CopyFrom(values);
        using var reconnector = new DeviceReconnector(kernels, DeviceReconnector.TargetsOver(shapes, weights), candidate, sorted);
        using DeviceEvent start = device.CreateEvent();
        using DeviceEvent stop = device.CreateEvent();
        reconnector.Enqueue(device.Stream); // warm-up (and the module's first launch)
        var us = new double[Samples];
        for (int i = 0; i < Samples; i++)
        {
            start.Record(device.Stream);
            reconnector.Enqueue(device.Stream);
            stop.Record(device.Stream);
            us[i] = stop.ElapsedMillisecondsSince(start) * 1e3;
        }
        return TrainStepBench.Median(us);
    }
}
