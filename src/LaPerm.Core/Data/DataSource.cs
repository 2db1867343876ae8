using System.Reflection;
using LaPerm.Core.IO;

namespace LaPerm.Core.Data;

/// <summary>A data set's training and test splits.</summary>
public sealed record DataSplit(Dataset Train, Dataset Test)
{
    /// <summary>Throws a <see cref="DataFormatException"/> naming the split, its file and both shapes unless every image fits the model's input and every label its outputs.</summary>
    public void EnsureFits(int channels, int height, int width, int classes, string modelName)
    {
        Train.EnsureShape(channels, height, width, modelName);
        Test.EnsureShape(channels, height, width, modelName);
        Train.EnsureClasses(classes, modelName);
    }
}

/// <summary>
/// Resolves the --data argument to a training and a test <see cref="Dataset"/>:
/// <list type="bullet">
/// <item><c>mnist</c>: the MNIST files embedded in this assembly (data/mnist in the repository).</item>
/// <item><c>fashion-mnist</c>: the IDX files where Debian's dataset-fashion-mnist installs them
/// (<see cref="FashionMnistDirectory"/>).</item>
/// <item><c>cifar10</c>: the official binaries in <see cref="DefaultCifar10Directory"/>.</item>
/// <item><c>NAME:DIR</c> (NAME one of mnist, fashion-mnist, cifar10): that data set's files in DIR.</item>
/// <item><c>DIR</c>: a directory holding MNIST-style IDX files (train-images-idx3-ubyte[.gz],
/// train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; the
/// names with a '.' before idx are accepted too) or the CIFAR-10 binaries (data_batch_1..5.bin,
/// test_batch.bin, directly or in a cifar-10-batches-bin subdirectory).</item>
/// </list>
/// IDX data sets are taken to have 10 classes, like MNIST and Fashion-MNIST.
/// </summary>
public static class DataSource
{
    public const int IdxClasses = 10;

    /// <summary>Where Debian's dataset-fashion-mnist package installs the IDX files.</summary>
    public const string FashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    private const string EmbeddedPrefix = "LaPerm.Core.Data.mnist.";
    private const string TrainImages = "train-images-idx3-ubyte";
    private const string TrainLabels = "train-labels-idx1-ubyte";
    private const string TestImages = "t10k-images-idx3-ubyte";
    private const string TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>
    /// Where the bare name <c>cifar10</c> looks for the binaries (there is no offline copy to
    /// embed): $XDG_DATA_HOME/laperm/cifar10, or ~/.local/share/laperm/cifar10 when
    /// XDG_DATA_HOME is not set. The files may also sit in a cifar-10-batches-bin subdirectory,
    /// as the official archive unpacks.
    /// </summary>
    public static string DefaultCifar10Directory
    {
        get
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            string root = string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share")
                : xdg;
            return Path.Combine(root, "laperm", "cifar10");
        }
    }

    /// <summary>
    /// <paramref name="spec"/> with its directory, if it names one, made absolute: what a run
    /// records, so that resuming it from another working directory reads the same files.
    /// </summary>
    public static string Canonical(string spec)
    {
        spec = spec.Trim();
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && spec[..colon].ToLowerInvariant() is "mnist" or "fashion-mnist" or "cifar10" && colon + 1 < spec.Length)
            return spec[..(colon + 1)] + Path.GetFullPath(spec[(colon + 1)..]);
        bool named = spec.ToLowerInvariant() is "mnist" or "fashion-mnist" or "cifar10";
        return !named && Directory.Exists(spec) ? Path.GetFullPath(spec) : spec;
    }

    /// <summary>Loads the data set named by <paramref name="spec"/> (see the class summary).</summary>
    /// <param name="limitTrain">Keep only the first N training records in file order (null: all).</param>
    /// <param name="limitTest">Keep only the first N test records in file order (null: all).</param>
    /// <exception cref="DataFormatException">The data set is unknown, missing or malformed.</exception>
    public static DataSplit Load(string spec, int? limitTrain = null, int? limitTest = null)
    {
        var (train, test) = LoadAll(spec.Trim(), withTrain: true);
        return new DataSplit(
            limitTrain is int nTrain ? train!.Take(nTrain) : train!,
            limitTest is int nTest ? test.Take(nTest) : test);
    }

    /// <summary>The test split of <paramref name="spec"/> alone: the training files are neither needed nor read (laperm eval).</summary>
    /// <exception cref="DataFormatException">The data set is unknown, missing or its test files are malformed.</exception>
    public static Dataset LoadTest(string spec, int? limitTest = null)
    {
        var (_, test) = LoadAll(spec.Trim(), withTrain: false);
        return limitTest is int n ? test.Take(n) : test;
    }

    /// <summary>The embedded MNIST (60,000 training and 10,000 test images of 28 x 28).</summary>
    public static DataSplit LoadEmbeddedMnist() => Whole(EmbeddedMnist(withTrain: true));

    private static (Dataset? Train, Dataset Test) EmbeddedMnist(bool withTrain)
    {
        var assembly = typeof(DataSource).Assembly;
        return (withTrain ? ReadIdxPair("mnist train", TrainImages + ".gz", TrainLabels + ".gz", name => OpenResource(assembly, name), "embedded") : null,
            ReadIdxPair("mnist test", TestImages + ".gz", TestLabels + ".gz", name => OpenResource(assembly, name), "embedded"));
    }

    /// <summary>Reads an MNIST-style IDX directory (files raw or gzip, see the class summary).</summary>
    public static DataSplit LoadIdxDirectory(string directory, string name) => Whole(IdxDirectory(directory, name, withTrain: true));

    private static (Dataset? Train, Dataset Test) IdxDirectory(string directory, string name, bool withTrain) =>
        (withTrain ? ReadIdxPair($"{name} train", FindIdxFile(directory, TrainImages), FindIdxFile(directory, TrainLabels), OpenPath) : null,
            ReadIdxPair($"{name} test", FindIdxFile(directory, TestImages), FindIdxFile(directory, TestLabels), OpenPath));

    /// <summary>Reads a directory of the CIFAR-10 binaries (or its cifar-10-batches-bin subdirectory).</summary>
    public static DataSplit LoadCifar10Directory(string directory, string name = "cifar10") => Whole(Cifar10Directory(directory, name, withTrain: true));

    private static (Dataset? Train, Dataset Test) Cifar10Directory(string directory, string name, bool withTrain)
    {
        string nested = Path.Combine(directory, "cifar-10-batches-bin");
        if (!Cifar10Reader.IsCifar10Directory(directory) && Cifar10Reader.IsCifar10Directory(nested))
            directory = nested;
        if (!Directory.Exists(directory))
            throw new DataFormatException($"{directory} {FilePaths.Missing(directory, directory: true)}; expected a directory holding the CIFAR-10 binaries data_batch_1..5.bin and test_batch.bin.");
        return (withTrain ? Cifar10Reader.ReadTrain(directory, name) : null, Cifar10Reader.ReadTest(directory, name));
    }

    private static DataSplit Whole((Dataset? Train, Dataset Test) split) => new(split.Train!, split.Test);

    private static (Dataset? Train, Dataset Test) LoadAll(string spec, bool withTrain)
    {
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0)
        {
            string name = spec[..colon].ToLowerInvariant();
            string directory = spec[(colon + 1)..];
            switch (name)
            {
                case "mnist":
                case "fashion-mnist":
                    RequireDirectory(directory, "MNIST-style IDX files");
                    return IdxDirectory(directory, name, withTrain);
                case "cifar10":
                    return Cifar10Directory(directory, "cifar10", withTrain);
            }
        }

        switch (spec.ToLowerInvariant())
        {
            case "mnist":
                return EmbeddedMnist(withTrain);
            case "fashion-mnist":
                if (!Directory.Exists(FashionMnistDirectory))
                    throw new DataFormatException($"Fashion-MNIST was not found in {FashionMnistDirectory}; install the Debian package dataset-fashion-mnist or pass --data fashion-mnist:DIR with a directory holding its IDX files.");
                return IdxDirectory(FashionMnistDirectory, "fashion-mnist", withTrain);
            case "cifar10":
                string cifar = DefaultCifar10Directory;
                if (!Cifar10Reader.IsCifar10Directory(cifar) && !Cifar10Reader.IsCifar10Directory(Path.Combine(cifar, "cifar-10-batches-bin")))
                    throw new DataFormatException($"CIFAR-10 was not found in {cifar}; put the official binaries (data_batch_1..5.bin, test_batch.bin) there or pass --data cifar10:DIR.");
                return Cifar10Directory(cifar, "cifar10", withTrain);
        }

        if (File.Exists(spec))
            throw new DataFormatException($"{spec} is a file; a data set is mnist, fashion-mnist, cifar10, NAME:DIR or a directory holding MNIST-style IDX files or the CIFAR-10 binaries.");
        if (!Directory.Exists(spec) && colon > 0 && spec[..colon].All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new DataFormatException($"unknown data set name '{spec[..colon]}' in '{spec}'; NAME:DIR takes mnist, fashion-mnist or cifar10{NameSuggestion.DidYouMean(spec[..colon], ["mnist", "fashion-mnist", "cifar10"])}.");
        if (!Directory.Exists(spec))
            throw new DataFormatException(spec.Contains('/') || spec.Contains(Path.DirectorySeparatorChar) || spec.StartsWith('.')
                ? $"data directory '{spec}' does not exist; expected mnist, fashion-mnist, cifar10, NAME:DIR or a directory holding MNIST-style IDX files or the CIFAR-10 binaries."
                : $"unknown data set '{spec}'; expected mnist, fashion-mnist, cifar10, NAME:DIR or a directory holding MNIST-style IDX files or the CIFAR-10 binaries.");
        string displayName = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(spec)));
        if (Cifar10Reader.IsCifar10Directory(spec) || Cifar10Reader.IsCifar10Directory(Path.Combine(spec, "cifar-10-batches-bin")))
            return Cifar10Directory(spec, displayName, withTrain);
        if (TryFindIdxFile(spec, TrainImages) is not null || TryFindIdxFile(spec, TestImages) is not null)
            return IdxDirectory(spec, displayName, withTrain);
        throw new DataFormatException($"{spec} holds neither MNIST-style IDX files ({TrainImages}[.gz] ...) nor the CIFAR-10 binaries (data_batch_1.bin ...).");
    }


    /// <param name="origin">Said before the images file's name in messages ("embedded"), or null for a path.</param>
    private static Dataset ReadIdxPair(string name, string imagesSource, string labelsSource, Func<string, Stream> open, string? origin = null)
    {
        IdxImages images;
        using (var stream = open(imagesSource))
            images = IdxReader.ReadImages(stream, imagesSource);
        byte[] labels;
        using (var stream = open(labelsSource))
            labels = IdxReader.ReadLabels(stream, labelsSource);
        if (images.Count != labels.Length)
            throw new DataFormatException($"{labelsSource} holds {labels.Length} labels but {imagesSource} holds {images.Count} images; expected one label per image.");
        Dataset.EnsureLabelsInRange(labels, IdxClasses, labelsSource);
        return new Dataset(name, images.Pixels, labels, 1, images.Rows, images.Columns, IdxClasses)
        {
            Source = origin is null ? imagesSource : $"{origin} {imagesSource}",
        };
    }

    private static Stream OpenResource(Assembly assembly, string file) =>
        assembly.GetManifestResourceStream(EmbeddedPrefix + file)
        ?? throw new InvalidOperationException($"The embedded resource {EmbeddedPrefix + file} is missing from {assembly.GetName().Name}; the build did not embed data/mnist.");

    private static Stream OpenPath(string path) => IdxReader.OpenFile(path, "an IDX file");

    private static void RequireDirectory(string directory, string what)
    {
        if (string.IsNullOrWhiteSpace(directory))
            throw new DataFormatException($"a data set NAME:DIR needs a directory after the colon, holding {what}.");
        if (!Directory.Exists(directory))
            throw new DataFormatException($"{directory} {FilePaths.Missing(directory, directory: true)}; expected a directory holding {what}.");
    }

    private static string FindIdxFile(string directory, string baseName) =>
        TryFindIdxFile(directory, baseName)
        ?? throw new DataFormatException($"{directory} has no {baseName} (or {baseName}.gz); expected the four MNIST-style IDX files there.");

    private static string? TryFindIdxFile(string directory, string baseName)
    {
        // Some mirrors name the files train-images.idx3-ubyte: accept both spellings.
        string dotted = baseName.Replace("-idx", ".idx", StringComparison.Ordinal);
        foreach (string candidate in (string[])[baseName, baseName + ".gz", dotted, dotted + ".gz"])
        {
            string path = Path.Combine(directory, candidate);
            if (File.Exists(path))
                return path;
        }
        return null;
    }
}
