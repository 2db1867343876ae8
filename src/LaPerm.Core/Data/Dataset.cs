namespace LaPerm.Core.Data;

/// <summary>
/// An image classification data set held as unsigned bytes, images in N x C x H x W order
/// (one byte per pixel and channel), labels one byte each. Bytes rather than floats keep the
/// full MNIST at 47 MB instead of 188 MB. <see cref="FillBatch"/> writes one normalised float
/// batch on the host (the CPU backend's gather); the trainer puts the training and test sets'
/// <see cref="Images"/> and <see cref="Labels"/> on its backend once
/// (<see cref="Backend.IBackend.UploadDataset"/>) and gathers each batch there: training batches by
/// <see cref="Backend.IBackend.GatherBatch"/>, evaluation batches by
/// <see cref="Backend.IBackend.GatherRecords"/>.
/// </summary>
public sealed class Dataset
{
    private readonly byte[] _images;
    private readonly byte[] _labels;

    /// <summary>Wraps the arrays without copying them; the caller must not change them afterwards.</summary>
    /// <param name="name">The data set and split, used in messages (e.g. "mnist train").</param>
    /// <exception cref="DataFormatException">The sizes disagree or a label is not below <paramref name="classes"/>.</exception>
    public Dataset(string name, byte[] images, byte[] labels, int channels, int height, int width, int classes)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(classes, 256);
        long sampleSize = (long)channels * height * width;
        if (images.LongLength != labels.LongLength * sampleSize)
            throw new DataFormatException($"{name}: image/label count mismatch, {labels.Length} labels need {labels.LongLength * sampleSize} pixel bytes ({channels}x{height}x{width} each), found {images.LongLength}.");
        EnsureLabelsInRange(labels, classes, name);
        Name = name;
        _images = images;
        _labels = labels;
        Channels = channels;
        Height = height;
        Width = width;
        Classes = classes;
    }

    public string Name { get; }
    public int Count => _labels.Length;
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int Classes { get; }

    /// <summary>Bytes per image: Channels x Height x Width.</summary>
    public int SampleSize => Channels * Height * Width;

    /// <summary>All images, N x C x H x W bytes (0..255).</summary>
    public ReadOnlySpan<byte> Images => _images;

    /// <summary>All labels, 0..Classes-1.</summary>
    public ReadOnlySpan<byte> Labels => _labels;

    /// <summary>SHA-256 (hex) of the images, labels and shapes of <paramref name="sets"/>, in order: what a run trained and tested on.</summary>
    public static string Fingerprint(params ReadOnlySpan<Dataset> sets)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        Span<int> shape = stackalloc int[5];
        foreach (var set in sets)
        {
            (shape[0], shape[1], shape[2], shape[3], shape[4]) = (set.Count, set.Channels, set.Height, set.Width, set.Classes);
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(shape));
            hash.AppendData(set._images);
            hash.AppendData(set._labels);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>One image's C x H x W bytes.</summary>
    public ReadOnlySpan<byte> Image(int index) => _images.AsSpan(checked(index * SampleSize), SampleSize);

    /// <summary>How many records carry each label, indexed by label.</summary>
    public int[] LabelCounts()
    {
        var counts = new int[Classes];
        foreach (byte label in _labels)
            counts[label]++;
        return counts;
    }

    /// <summary>
    /// The first <paramref name="count"/> records in file order (a copy), for --limit-train and
    /// --limit-test. File order rather than a random subset keeps a limited run reproducible
    /// without a seed and comparable across tools; MNIST's file order is already mixed by class.
    /// Returns this data set when <paramref name="count"/> is not smaller than <see cref="Count"/>.
    /// </summary>
    public Dataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count >= Count)
            return this;
        return new Dataset(Name, _images.AsSpan(0, count * SampleSize).ToArray(), _labels.AsSpan(0, count).ToArray(),
            Channels, Height, Width, Classes) { Source = Source };
    }

    /// <summary>The file(s) the images came from, as messages name them (null: made in memory).</summary>
    public string? Source { get; init; }

    /// <summary>Throws a <see cref="DataFormatException"/> unless the images are <paramref name="channels"/> x <paramref name="height"/> x <paramref name="width"/>.</summary>
    public void EnsureShape(int channels, int height, int width, string modelName)
    {
        if (channels != Channels || height != Height || width != Width)
            throw new DataFormatException($"{Name}{(Source is null ? "" : $" ({Source})")} has images of {Channels}x{Height}x{Width} (channels x height x width), but model {modelName} expects {channels}x{height}x{width}.");
    }

    /// <summary>Throws a <see cref="DataFormatException"/> unless the labels fit a model with <paramref name="modelClasses"/> outputs.</summary>
    public void EnsureClasses(int modelClasses, string modelName)
    {
        if (Classes > modelClasses)
            throw new DataFormatException($"{Name} has {Classes} classes, but model {modelName} has only {modelClasses} outputs.");
    }

    /// <summary>
    /// Writes the images at <paramref name="indices"/>, normalised to x / 255, into
    /// <paramref name="images"/> (indices.Length x C x H x W floats) and their labels into
    /// <paramref name="labels"/>. With an <paramref name="augmenter"/> each image goes through
    /// its own random affine transform, drawn from (augmenter seed, <paramref name="epoch"/>,
    /// record index), so the batch is identical whatever the batch order or thread count.
    /// </summary>
    /// <param name="maxDegreeOfParallelism">Threads used for augmentation (-1: all cores).</param>
    public void FillBatch(ReadOnlySpan<int> indices, Span<float> images, Span<int> labels,
        Augmenter? augmenter = null, int epoch = 0, int maxDegreeOfParallelism = -1)
    {
        int sampleSize = SampleSize;
        if (images.Length < indices.Length * sampleSize)
            throw new ArgumentException($"The image buffer holds {images.Length} floats; {indices.Length} images need {indices.Length * sampleSize}.", nameof(images));
        if (labels.Length < indices.Length)
            throw new ArgumentException($"The label buffer holds {labels.Length} entries; the batch has {indices.Length}.", nameof(labels));
        for (int i = 0; i < indices.Length; i++)
        {
            if ((uint)indices[i] >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(indices), $"Index {indices[i]} at batch position {i} is outside {Name}'s {Count} records.");
            labels[i] = _labels[indices[i]];
        }

        if (augmenter is null || augmenter.Preset.IsIdentity)
        {
            for (int i = 0; i < indices.Length; i++)
                ImageWarp.Normalise(Image(indices[i]), images.Slice(i * sampleSize, sampleSize));
            return;
        }

        augmenter.AugmentBatch(this, indices, images, epoch, maxDegreeOfParallelism);
    }

    internal static void EnsureLabelsInRange(ReadOnlySpan<byte> labels, int classes, string source)
    {
        // Vectorised scan first; only a failing file pays for finding the first bad record.
        int bad = labels.IndexOfAnyExceptInRange((byte)0, (byte)(classes - 1));
        if (bad >= 0)
            throw new DataFormatException($"{source}: label {labels[bad]} of record {bad} (counting from 0) is out of range, expected 0..{classes - 1}.");
    }
}
