using LaPerm.Core.Data;

namespace LaPerm.Core.Backend;

/// <summary>
/// A training set resident on a backend, uploaded once per run by <see cref="IBackend.UploadDataset"/>:
/// the raw bytes (images N x C x H x W, labels one each), so MNIST takes 47 MB and CIFAR-10's
/// training split 154 MB of device memory. Whoever uploads disposes.
/// </summary>
public interface IDeviceDataset : IDisposable
{
    /// <summary>The host data set the bytes came from (shape, count, name).</summary>
    Dataset Source { get; }
}

/// <summary>
/// One training batch for <see cref="IBackend.GatherBatch"/>: positions
/// [<paramref name="BatchStart"/>, BatchStart + <paramref name="BatchSize"/>) of epoch
/// <paramref name="Epoch"/>'s order (<see cref="EpochShuffler"/> with <paramref name="ShuffleSeed"/>),
/// each image warped by <paramref name="Augmenter"/>'s draw for (epoch, record) when there is one.
/// </summary>
public readonly record struct BatchGather(ulong ShuffleSeed, int Epoch, int BatchStart, int BatchSize, Augmenter? Augmenter)
{
    /// <summary>Throws unless the batch lies inside an epoch over <paramref name="data"/>.</summary>
    public void Validate(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (Epoch < 0)
            throw new ArgumentOutOfRangeException(nameof(Epoch), $"The epoch must be 0 or positive; got {Epoch}.");
        if (BatchSize < 1 || BatchStart < 0 || (long)BatchStart + BatchSize > data.Count)
            throw new ArgumentOutOfRangeException(nameof(BatchStart), $"Batch positions {BatchStart}..{(long)BatchStart + BatchSize - 1} are outside an epoch of {data.Name}'s {data.Count} records.");
    }
}
