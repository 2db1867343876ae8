using LaPerm.Core.Data;

namespace LaPerm.Core.Backend;

/// <summary>
/// A data set resident on a backend (the training set for its batches, the test set for evaluation), uploaded once per run by <see cref="IBackend.UploadDataset"/>:
/// the raw bytes (images N x C x H x W, labels one each), so MNIST takes 47 MB and CIFAR-10's
/// training split 154 MB of device memory. Whoever uploads disposes.
/// </summary>
public interface IDeviceDataset : IDisposable
{
    /// <summary>The host data set the bytes came from (shape, count, name).</summary>
    Dataset Source { get; }
}

/// <summary>The checks every backend's <see cref="IBackend.GatherBatch"/> and <see cref="IBackend.GatherRecords"/> make on the host.</summary>
public static class GatherGuard
{
    /// <summary>Throws unless <paramref name="step"/>'s batch lies inside an epoch over <paramref name="data"/>.</summary>
    public static void Validate(Dataset data, in StepScalars step)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (step.Epoch < 0)
            throw new ArgumentOutOfRangeException(nameof(step), $"The step's epoch must be 0 or positive; got {step.Epoch}.");
        if (step.BatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(step), $"The step's batch size is {step.BatchSize}; call BeginStep with the batch's epoch, start and size before GatherBatch.");
        if (step.BatchStart < 0 || (long)step.BatchStart + step.BatchSize > data.Count)
            throw new ArgumentOutOfRangeException(nameof(step), $"Batch positions {step.BatchStart}..{(long)step.BatchStart + step.BatchSize - 1} are outside an epoch of {data.Name}'s {data.Count} records.");
    }

    /// <summary>Throws unless records [<paramref name="start"/>, start + <paramref name="size"/>) exist in <paramref name="data"/>.</summary>
    public static void ValidateRecords(Dataset data, int start, int size)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (size < 1)
            throw new ArgumentOutOfRangeException(nameof(size), $"An evaluation batch needs at least one record; the labels tensor holds {size}.");
        if (start < 0 || (long)start + size > data.Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Records {start}..{(long)start + size - 1} are outside {data.Name}'s {data.Count} records.");
    }
}
