using LaPerm.Core.Backend;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

/// <summary>
/// Inference-mode loss and accuracy over the first N records of a data set resident on the
/// network's backend (<see cref="IBackend.UploadDataset"/>, once per run): each batch is gathered
/// there in stored order (<see cref="IBackend.GatherRecords"/>), the loss and correct count are
/// summed there, and the two sums are read back once per evaluation.
/// </summary>
public static class Evaluation
{
    /// <summary>
    /// The sums go to <paramref name="sums"/> (two floats, zeroed here) when given: a trainer passes
    /// one for the whole run, since freeing device memory makes the captured training steps stale.
    /// </summary>
    public static (double Loss, double Accuracy) Run(Network network, IDeviceDataset data, int batch, int count, Tensor<float>? sums = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        if (count <= 0) return (double.NaN, double.NaN);
        if (count > data.Source.Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"Cannot evaluate {count} records of {data.Source.Name}, which holds {data.Source.Count}.");
        var backend = network.Backend;
        using var owned = sums is null ? backend.Allocate<float>(new Shape(2)) : null;
        sums ??= owned!;
        backend.Fill(sums, 0f);
        for (int start = 0; start < count; start += batch)
        {
            int size = Math.Min(batch, count - start);
            var pass = network.GetPass(size);
            backend.GatherRecords(data, start, pass.Input, pass.Labels);
            pass.Forward(ForwardMode.Inference);
            pass.Loss(sums);
        }
        var result = new float[2];
        backend.Download(sums, result);
        return ((double)result[0] / count, (double)result[1] / count);
    }
}
