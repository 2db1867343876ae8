using LaPerm.Core.Data;

namespace LaPerm.Core.Tests.Data;

public sealed class DatasetTests
{
    private static Dataset RandomDataset(int seed, int count, int channels, int height, int width)
    {
        var rng = new Random(seed);
        return new Dataset("random", DataFiles.RandomBytes(rng, count * channels * height * width), DataFiles.RandomBytes(rng, count, 10),
            channels, height, width, 10);
    }

    [Fact]
    public void FillBatchNormalisesAndGathersInIndexOrder()
    {
        var data = RandomDataset(31, 20, 3, 4, 5);
        int[] indices = [7, 0, 19, 7, 3];
        var images = new float[indices.Length * data.SampleSize + 3];
        Array.Fill(images, float.NaN);
        var labels = new int[indices.Length];
        Array.Fill(labels, -1);

        data.FillBatch(indices, images, labels);

        for (int b = 0; b < indices.Length; b++)
        {
            Assert.Equal(data.Labels[indices[b]], labels[b]);
            var source = data.Image(indices[b]);
            for (int p = 0; p < data.SampleSize; p++)
                Assert.Equal(source[p] / 255f, images[b * data.SampleSize + p]);
        }
        // Nothing beyond the batch is written.
        Assert.All(images[^3..], v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void FillBatchRejectsAnIndexOutsideTheDataSet()
    {
        var data = RandomDataset(32, 4, 1, 2, 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => data.FillBatch([1, 4], new float[8], new int[2]));
    }

    [Fact]
    public void EnsureShapeNamesDataSetModelAndBothShapes()
    {
        var data = RandomDataset(33, 2, 1, 28, 28);
        data.EnsureShape(1, 28, 28, "conv7");
        var e = Assert.Throws<DataFormatException>(() => data.EnsureShape(3, 32, 32, "conv4"));
        Assert.Contains("random", e.Message);
        Assert.Contains("1x28x28", e.Message);
        Assert.Contains("conv4 expects 3x32x32", e.Message);
        // A set read from files names the file; a slice of it too.
        var fromFile = new Dataset("digits train", new byte[2 * 28 * 28], [1, 2], 1, 28, 28, 10) { Source = "/data/digits/train-images-idx3-ubyte" };
        e = Assert.Throws<DataFormatException>(() => fromFile.Take(1).EnsureShape(3, 32, 32, "conv4"));
        Assert.StartsWith("digits train (/data/digits/train-images-idx3-ubyte) has images of 1x28x28", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConstructorRejectsMismatchedSizesAndLabelsOutOfRange()
    {
        var mismatch = Assert.Throws<DataFormatException>(() => new Dataset("d", new byte[10], new byte[3], 1, 1, 3, 10));
        Assert.Contains("mismatch", mismatch.Message);
        var range = Assert.Throws<DataFormatException>(() => new Dataset("d", new byte[9], [0, 4, 3], 1, 1, 3, 4));
        Assert.Contains("label 4 of record 1 (counting from 0)", range.Message);
        Assert.Contains("expected 0..3", range.Message);
    }

    [Fact]
    public void TakeKeepsTheFirstRecords()
    {
        var data = RandomDataset(34, 10, 2, 3, 3);
        var first = data.Take(4);
        Assert.Equal(4, first.Count);
        Assert.True(first.Images.SequenceEqual(data.Images[..(4 * 18)]));
        Assert.True(first.Labels.SequenceEqual(data.Labels[..4]));
        Assert.Same(data, data.Take(10));
        Assert.Same(data, data.Take(50));
    }
}
