using LaPerm.Core.Data;

namespace LaPerm.Core.Tests.Data;

public sealed class DataSourceTests
{
    private static readonly int[] MnistTrainCounts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    private static readonly int[] MnistTestCounts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

    [Fact]
    public void EmbeddedMnistHasThePublishedLabelCountsAndShape()
    {
        var split = DataSource.Load("mnist");
        foreach (var (data, counts) in new[] { (split.Train, MnistTrainCounts), (split.Test, MnistTestCounts) })
        {
            Assert.Equal(counts.Sum(), data.Count);
            Assert.Equal(counts, data.LabelCounts());
            Assert.Equal((1, 28, 28, 10), (data.Channels, data.Height, data.Width, data.Classes));
            Assert.Equal(data.Count * 784, data.Images.Length);
        }
        // The well-known first training label of MNIST is a 5, the first test label a 7.
        Assert.Equal(5, split.Train.Labels[0]);
        Assert.Equal(7, split.Test.Labels[0]);
    }

    [Fact]
    public void LimitsTakeTheFirstRecordsInFileOrder()
    {
        var full = DataSource.LoadEmbeddedMnist();
        var limited = DataSource.Load("mnist", limitTrain: 123, limitTest: 45);
        Assert.Equal(123, limited.Train.Count);
        Assert.Equal(45, limited.Test.Count);
        Assert.True(full.Train.Images[..(123 * 784)].SequenceEqual(limited.Train.Images));
        Assert.True(full.Test.Labels[..45].SequenceEqual(limited.Test.Labels));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoadsAnIdxDirectoryRawOrGzip(bool gzip)
    {
        var rng = new Random(gzip ? 21 : 22);
        using var dir = new TempDirectory();
        var (trainPixels, trainLabels, testPixels, testLabels) = DataFiles.WriteIdxDirectory(dir, rng, 9, 4, 6, 5, gzip);
        foreach (string spec in new[] { dir.Path, "fashion-mnist:" + dir.Path })
        {
            var split = DataSource.Load(spec);
            Assert.Equal((1, 6, 5), (split.Train.Channels, split.Train.Height, split.Train.Width));
            Assert.True(split.Train.Images.SequenceEqual(trainPixels));
            Assert.True(split.Train.Labels.SequenceEqual(trainLabels));
            Assert.True(split.Test.Images.SequenceEqual(testPixels));
            Assert.True(split.Test.Labels.SequenceEqual(testLabels));
        }
        Assert.StartsWith("fashion-mnist", DataSource.Load("fashion-mnist:" + dir.Path).Train.Name);
    }

    [Fact]
    public void TheTestSplitAloneNeedsNoTrainingFiles()
    {
        // laperm eval reads only the test split: a directory of the two t10k files, or one whose
        // training images are broken, evaluates; a full load of the same directory refuses.
        var rng = new Random(26);
        using var dir = new TempDirectory();
        var (_, _, testPixels, testLabels) = DataFiles.WriteIdxDirectory(dir, rng, 9, 4, 6, 5, gzip: true);
        File.WriteAllBytes(Path.Combine(dir.Path, "train-images-idx3-ubyte.gz"), [1, 2, 3]);
        File.Delete(Path.Combine(dir.Path, "train-labels-idx1-ubyte.gz"));
        foreach (string spec in new[] { dir.Path, "mnist:" + dir.Path })
        {
            var test = DataSource.LoadTest(spec);
            Assert.True(test.Images.SequenceEqual(testPixels));
            Assert.True(test.Labels.SequenceEqual(testLabels));
            Assert.Equal(2, DataSource.LoadTest(spec, limitTest: 2).Count);
            Assert.Throws<DataFormatException>(() => DataSource.Load(spec));
        }
        Assert.Equal(DataSource.LoadEmbeddedMnist().Test.Labels.ToArray(), DataSource.LoadTest("mnist").Labels.ToArray());
    }

    [Fact]
    public void AMissingDataDirectoryIsNamedAsADirectory()
    {
        Assert.Contains("data directory './no/such/dir' does not exist", Assert.Throws<DataFormatException>(() => DataSource.Load("./no/such/dir")).Message, StringComparison.Ordinal);
        Assert.Contains("unknown data set 'mnst'", Assert.Throws<DataFormatException>(() => DataSource.Load("mnst")).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cifar:/no/such/dir", "unknown data set name 'cifar' in 'cifar:/no/such/dir'; NAME:DIR takes mnist, fashion-mnist or cifar10 (did you mean cifar10?).")]
    [InlineData("fashion:/no/such/dir", "unknown data set name 'fashion' in 'fashion:/no/such/dir'; NAME:DIR takes mnist, fashion-mnist or cifar10 (did you mean fashion-mnist?).")]
    [InlineData("svhn:/no/such/dir", "unknown data set name 'svhn' in 'svhn:/no/such/dir'; NAME:DIR takes mnist, fashion-mnist or cifar10.")]
    public void AMistypedNameBeforeADirectoryIsNamedAsTheName(string spec, string message)
    {
        // Before: "data directory 'cifar:/x' does not exist", as if the whole were a path.
        Assert.Equal(message, Assert.Throws<DataFormatException>(() => DataSource.Load(spec)).Message);
    }

    [Fact]
    public void ImageLabelCountMismatchNamesBothFiles()
    {
        var rng = new Random(23);
        using var dir = new TempDirectory();
        DataFiles.WriteIdxDirectory(dir, rng, 9, 4, 3, 3, gzip: false);
        string labels = dir.Write("train-labels-idx1-ubyte", DataFiles.IdxLabels(DataFiles.RandomBytes(rng, 8, 10)));
        var e = Assert.Throws<DataFormatException>(() => DataSource.Load(dir.Path));
        Assert.Contains(labels, e.Message);
        Assert.Contains("train-images-idx3-ubyte", e.Message);
        Assert.Contains("8 labels", e.Message);
        Assert.Contains("9 images", e.Message);
    }

    [Fact]
    public void LabelOutOfRangeNamesFileRecordAndRange()
    {
        var rng = new Random(24);
        using var dir = new TempDirectory();
        DataFiles.WriteIdxDirectory(dir, rng, 9, 4, 3, 3, gzip: true);
        var labels = DataFiles.RandomBytes(rng, 4, 10);
        labels[2] = 12;
        string path = dir.Write("t10k-labels-idx1-ubyte.gz", DataFiles.IdxLabels(labels), gzip: true);
        var e = Assert.Throws<DataFormatException>(() => DataSource.Load(dir.Path));
        Assert.Contains(path, e.Message);
        Assert.Contains("label 12 of record 2 (counting from 0)", e.Message);
        Assert.Contains("expected 0..9", e.Message);
    }

    [Fact]
    public void LoadsACifar10DirectoryIncludingTheNestedLayout()
    {
        var rng = new Random(25);
        using var dir = new TempDirectory();
        var allLabels = new List<byte>();
        var allPixels = new List<byte>();
        for (int b = 1; b <= 5; b++)
        {
            int n = b + 1;
            var labels = DataFiles.RandomBytes(rng, n, 10);
            var pixels = DataFiles.RandomBytes(rng, n * 3072);
            dir.Write($"cifar-10-batches-bin/data_batch_{b}.bin", DataFiles.CifarRecords(labels, pixels));
            allLabels.AddRange(labels);
            allPixels.AddRange(pixels);
        }
        var testLabels = DataFiles.RandomBytes(rng, 3, 10);
        var testPixels = DataFiles.RandomBytes(rng, 3 * 3072);
        dir.Write("cifar-10-batches-bin/test_batch.bin", DataFiles.CifarRecords(testLabels, testPixels));

        foreach (string spec in new[] { dir.Path, "cifar10:" + dir.Path, Path.Combine(dir.Path, "cifar-10-batches-bin") })
        {
            var split = DataSource.Load(spec);
            Assert.Equal((3, 32, 32, 10), (split.Train.Channels, split.Train.Height, split.Train.Width, split.Train.Classes));
            Assert.Equal(allLabels.Count, split.Train.Count);
            Assert.True(split.Train.Labels.SequenceEqual(allLabels.ToArray()));
            Assert.True(split.Train.Images.SequenceEqual(allPixels.ToArray()));
            Assert.True(split.Test.Labels.SequenceEqual(testLabels));
            Assert.True(split.Test.Images.SequenceEqual(testPixels));
        }
    }

    [Fact]
    public void TruncatedCifarFileGivesExpectedAndFoundBytes()
    {
        var rng = new Random(26);
        using var dir = new TempDirectory();
        var full = DataFiles.CifarRecords(DataFiles.RandomBytes(rng, 2, 10), DataFiles.RandomBytes(rng, 2 * 3072));
        string path = dir.Write("test_batch.bin", full[..5000]);
        var e = Assert.Throws<DataFormatException>(() => Cifar10Reader.Read("cifar10 test", [path]));
        Assert.Contains(path, e.Message);
        Assert.Contains("multiple of 3073 bytes", e.Message);
        Assert.Contains("found 5000", e.Message);
    }

    [Fact]
    public void CifarLabelOutOfRangeNamesFileAndRecord()
    {
        var rng = new Random(27);
        using var dir = new TempDirectory();
        var labels = DataFiles.RandomBytes(rng, 4, 10);
        labels[3] = 10;
        string path = dir.Write("data_batch_1.bin", DataFiles.CifarRecords(labels, DataFiles.RandomBytes(rng, 4 * 3072)));
        var e = Assert.Throws<DataFormatException>(() => Cifar10Reader.Read("cifar10 train", [path]));
        Assert.Contains(path, e.Message);
        Assert.Contains("label 10 of record 3 (counting from 0)", e.Message);
        Assert.Contains("expected 0..9", e.Message);
    }

    [Fact]
    public void MissingCifarBatchNamesTheFile()
    {
        var rng = new Random(28);
        using var dir = new TempDirectory();
        dir.Write("data_batch_1.bin", DataFiles.CifarRecords([1], DataFiles.RandomBytes(rng, 3072)));
        var e = Assert.Throws<DataFormatException>(() => DataSource.Load("cifar10:" + dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "data_batch_2.bin"), e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void APathOfTheWrongKindIsNamedAsWhatItIsNotAsMissing()
    {
        // A directory where a batch file goes, a file where the data directory goes: both "did not exist".
        var rng = new Random(29);
        using var dir = new TempDirectory();
        dir.Write("data_batch_1.bin", DataFiles.CifarRecords([1], DataFiles.RandomBytes(rng, 3072)));
        Directory.CreateDirectory(Path.Combine(dir.Path, "data_batch_2.bin"));
        var e = Assert.Throws<DataFormatException>(() => DataSource.Load("cifar10:" + dir.Path));
        Assert.Contains($"{Path.Combine(dir.Path, "data_batch_2.bin")} is a directory, not a file; expected a CIFAR-10 binary batch file there", e.Message);
        string file = dir.Write("afile", [1, 2, 3]);
        e = Assert.Throws<DataFormatException>(() => DataSource.Load("cifar10:" + file));
        Assert.Contains($"{file} is a file, not a directory; expected a directory holding", e.Message);
    }

    [Fact]
    public void ARunRecordsItsDataDirectoryAsAnAbsolutePath()
    {
        // A relative DIR was recorded as typed, and --resume from another working directory read other files.
        Assert.Equal("mnist:" + Path.GetFullPath("some/dir"), DataSource.Canonical("mnist:some/dir"));
        Assert.Equal("cifar10:" + Path.GetFullPath("c"), DataSource.Canonical(" cifar10:c "));
        Assert.Equal("mnist", DataSource.Canonical("mnist"));
        Assert.Equal("fashion-mnist", DataSource.Canonical("fashion-mnist"));
        using var dir = new TempDirectory();
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, dir.Path);
        Assert.Equal(dir.Path, DataSource.Canonical(relative));
        Assert.Equal("no-such-dir", DataSource.Canonical("no-such-dir"));   // left for Load to report
    }

    [Fact]
    public void UnknownSpecAndEmptyDirectoryAreUserErrors()
    {
        using var dir = new TempDirectory();
        var unknown = Assert.Throws<DataFormatException>(() => DataSource.Load("no-such-data-set-" + Guid.NewGuid().ToString("N")));
        Assert.Contains("expected mnist, fashion-mnist, cifar10", unknown.Message);
        var empty = Assert.Throws<DataFormatException>(() => DataSource.Load(dir.Path));
        Assert.Contains(dir.Path, empty.Message);
    }

    [Fact]
    public void InstalledFashionMnistLoadsWithBalancedClasses()
    {
        if (!Directory.Exists(DataSource.FashionMnistDirectory))
            Assert.Skip($"Fashion-MNIST is not installed in {DataSource.FashionMnistDirectory} (Debian package dataset-fashion-mnist).");
        var split = DataSource.Load("fashion-mnist");
        Assert.Equal(Enumerable.Repeat(6000, 10), split.Train.LabelCounts());
        Assert.Equal(Enumerable.Repeat(1000, 10), split.Test.LabelCounts());
        Assert.Equal((28, 28), (split.Train.Height, split.Train.Width));
    }
}
