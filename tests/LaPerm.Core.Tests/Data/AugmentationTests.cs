using LaPerm.Core.Data;

namespace LaPerm.Core.Tests.Data;

public sealed class AugmentationTests
{
    private static Dataset RandomDataset(int seed, int count, int channels, int height, int width)
    {
        var rng = new Random(seed);
        return new Dataset("random", DataFiles.RandomBytes(rng, count * channels * height * width), DataFiles.RandomBytes(rng, count, 10),
            channels, height, width, 10);
    }

    private static float[] Batch(Dataset data, int[] indices, Augmenter? augmenter, int epoch, int threads = -1)
    {
        var images = new float[indices.Length * data.SampleSize];
        Array.Fill(images, float.NaN);
        data.FillBatch(indices, images, new int[indices.Length], augmenter, epoch, threads);
        return images;
    }

    [Theory]
    [InlineData("mnist", 1, 28, 28)]
    [InlineData("cifar", 3, 32, 32)]
    public void SameSeedGivesIdenticalBatchesAndOtherSeedsOrEpochsDiffer(string preset, int channels, int height, int width)
    {
        var data = RandomDataset(41, 40, channels, height, width);
        int[] indices = [.. Enumerable.Range(0, 40).Reverse()];
        var p = AugmentationPreset.Parse(preset);
        var a = Batch(data, indices, new Augmenter(p, 5), epoch: 2);
        var b = Batch(data, indices, new Augmenter(p, 5), epoch: 2);
        Assert.Equal(a, b);
        Assert.NotEqual(a, Batch(data, indices, new Augmenter(p, 6), epoch: 2));
        Assert.NotEqual(a, Batch(data, indices, new Augmenter(p, 5), epoch: 3));
        Assert.NotEqual(a, Batch(data, indices, null, epoch: 2));
    }

    [Fact]
    public void ResultDoesNotDependOnThreadsOrBatchComposition()
    {
        var data = RandomDataset(42, 64, 1, 28, 28);
        var augmenter = new Augmenter(AugmentationPreset.Mnist, 9);
        int[] indices = [.. EpochShuffler.Permutation(1, 0, 64)];
        var parallel = Batch(data, indices, augmenter, 1, threads: -1);
        var serial = Batch(data, indices, augmenter, 1, threads: 1);
        Assert.Equal(serial, parallel);
        // Record 17 alone gives the same image as inside the big batch.
        int position = Array.IndexOf(indices, 17);
        var alone = Batch(data, [17], augmenter, 1);
        Assert.Equal(parallel.AsSpan(position * 784, 784).ToArray(), alone);
    }

    [Fact]
    public void NonePresetIsTheIdentity()
    {
        var data = RandomDataset(43, 10, 3, 8, 8);
        int[] indices = [3, 1, 4, 1, 5];
        Assert.Equal(Batch(data, indices, null, 0), Batch(data, indices, new Augmenter(AugmentationPreset.None, 77), 4));
        Assert.Equal(AffineTransform.Identity, new Augmenter(AugmentationPreset.None, 77).Draw(4, 2, 8, 8));
    }

    [Fact]
    public void IdentityWarpEqualsPlainNormalisation()
    {
        var rng = new Random(44);
        var image = DataFiles.RandomBytes(rng, 3 * 9 * 7);
        var warped = new float[image.Length];
        var plain = new float[image.Length];
        Array.Fill(warped, float.NaN);
        Array.Fill(plain, float.NaN);
        ImageWarp.Warp(image, 3, 9, 7, AffineTransform.Identity.ToSamplingMap(9, 7), warped);
        ImageWarp.Normalise(image, plain);
        Assert.Equal(plain, warped);
    }

    [Fact]
    public void IntegerShiftMovesEveryPixelByTheShift()
    {
        var rng = new Random(45);
        const int h = 12, w = 10, dx = 3, dy = -2;
        var image = DataFiles.RandomBytes(rng, 2 * h * w, maxExclusive: 255);
        var output = new float[image.Length];
        Array.Fill(output, float.NaN);
        ImageWarp.Warp(image, 2, h, w, new AffineTransform(0f, 1f, 1f, dx, dy, false).ToSamplingMap(h, w), output);
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    // 'nearest' fill: a position shifted in from outside takes the edge pixel.
                    int sx = Math.Clamp(x - dx, 0, w - 1), sy = Math.Clamp(y - dy, 0, h - 1);
                    Assert.Equal(image[c * h * w + sy * w + sx] / 255f, output[c * h * w + y * w + x]);
                }
    }

    [Fact]
    public void HalfPixelShiftAveragesNeighbours()
    {
        byte[] image = [0, 100, 200, 50];
        var output = new float[4];
        Array.Fill(output, float.NaN);   // the first expected value is 0: a skipped pixel must not pass
        ImageWarp.Warp(image, 1, 1, 4, new AffineTransform(0f, 1f, 1f, 0.5f, 0f, false).ToSamplingMap(1, 4), output);
        Assert.Equal([0f, 50f / 255f, 150f / 255f, 125f / 255f], output, (a, b) => Math.Abs(a - b) < 1e-6f);
    }

    [Fact]
    public void FlipMirrorsEachRow()
    {
        var rng = new Random(46);
        const int h = 5, w = 8;
        var image = DataFiles.RandomBytes(rng, 3 * h * w);
        var output = new float[image.Length];
        Array.Fill(output, float.NaN);
        ImageWarp.Warp(image, 3, h, w, new AffineTransform(0f, 1f, 1f, 0f, 0f, true).ToSamplingMap(h, w), output);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    Assert.Equal(image[c * h * w + y * w + (w - 1 - x)] / 255f, output[c * h * w + y * w + x]);
    }

    [Fact]
    public void QuarterTurnRotatesCounterClockwise()
    {
        var rng = new Random(47);
        const int n = 6;
        var image = DataFiles.RandomBytes(rng, n * n);
        var output = new float[n * n];
        ImageWarp.Warp(image, 1, n, n, new AffineTransform(90f, 1f, 1f, 0f, 0f, false).ToSamplingMap(n, n), output);
        // Counter-clockwise as displayed (y down): the top row's right end moves to the left column's top.
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                Assert.Equal(image[x * n + (n - 1 - y)] / 255f, output[y * n + x], 1e-5f);
    }

    [Fact]
    public void ZoomScalesAboutTheCentre()
    {
        var rng = new Random(49);
        const int n = 9; // odd, so the centre (4, 4) is a pixel and a 2x zoom samples pixel centres
        var image = DataFiles.RandomBytes(rng, n * n);
        var output = new float[n * n];
        Array.Fill(output, float.NaN);
        ImageWarp.Warp(image, 1, n, n, new AffineTransform(0f, 2f, 2f, 0f, 0f, false).ToSamplingMap(n, n), output);
        for (int y = 0; y < n; y += 2)
            for (int x = 0; x < n; x += 2)
                Assert.Equal(image[(4 + (y - 4) / 2) * n + 4 + (x - 4) / 2] / 255f, output[y * n + x]);
    }

    [Theory]
    [InlineData("mnist")]
    [InlineData("cifar")]
    public void AugmentedPixelsStayInTheUnitInterval(string preset)
    {
        var data = RandomDataset(48, 50, 3, 16, 16);
        var images = Batch(data, [.. Enumerable.Range(0, 50)], new Augmenter(AugmentationPreset.Parse(preset), 3), 0);
        Assert.All(images, v => Assert.InRange(v, 0f, 1f));
    }

    [Fact]
    public void DrawnParametersStayWithinThePresetRanges()
    {
        var mnist = new Augmenter(AugmentationPreset.Mnist, 11);
        var cifar = new Augmenter(AugmentationPreset.Cifar, 11);
        int flips = 0;
        for (int i = 0; i < 2000; i++)
        {
            var m = mnist.Draw(0, i, 28, 28);
            Assert.InRange(m.RotationDegrees, -10f, 10f);
            Assert.InRange(m.ZoomX, 0.9f, 1.1f);
            Assert.InRange(m.ZoomY, 0.9f, 1.1f);
            Assert.InRange(m.ShiftX, -2.8f, 2.8f);
            Assert.InRange(m.ShiftY, -2.8f, 2.8f);
            Assert.False(m.FlipHorizontal);
            var c = cifar.Draw(0, i, 32, 32);
            Assert.InRange(c.RotationDegrees, -15f, 15f);
            Assert.Equal((1f, 1f), (c.ZoomX, c.ZoomY));
            Assert.InRange(c.ShiftX, -3.2f, 3.2f);
            flips += c.FlipHorizontal ? 1 : 0;
        }
        Assert.InRange(flips, 900, 1100);
    }

    [Fact]
    public void DrawnParametersCoverBothSidesOfTheirRangesAndZoomIsDrawnPerAxis()
    {
        var mnist = new Augmenter(AugmentationPreset.Mnist, 11);
        var draws = Enumerable.Range(0, 2000).Select(i => mnist.Draw(0, i, 28, 28)).ToList();
        Func<AffineTransform, float>[] pick = [d => d.RotationDegrees, d => d.ZoomX - 1f, d => d.ZoomY - 1f, d => d.ShiftX, d => d.ShiftY];
        float[] ranges = [10f, 0.1f, 0.1f, 2.8f, 2.8f];
        for (int k = 0; k < pick.Length; k++)
        {
            var v = draws.Select(pick[k]).ToList();
            Assert.InRange(v.Count(x => x < 0f), 900, 1100);
            Assert.True(v.Min() < -0.95f * ranges[k] && v.Max() > 0.95f * ranges[k], $"parameter {k}: [{v.Min()}, {v.Max()}]");
        }
        Assert.True(draws.Count(d => d.ZoomX != d.ZoomY) > 1990);   // Keras draws the x and y zoom independently
    }

    [Fact]
    public void ParseRejectsUnknownNames()
    {
        Assert.Same(AugmentationPreset.Mnist, AugmentationPreset.Parse("MNIST"));
        var e = Assert.Throws<ArgumentException>(() => AugmentationPreset.Parse("rotate"));
        Assert.Contains("expected none, mnist, cifar or shift-flip", e.Message);
        Assert.Equal((0f, 0f, 0.1f, true), (AugmentationPreset.ShiftFlip.RotationDegrees, AugmentationPreset.ShiftFlip.ZoomRange,
            AugmentationPreset.ShiftFlip.ShiftFraction, AugmentationPreset.ShiftFlip.HorizontalFlip));
        Assert.Same(AugmentationPreset.ShiftFlip, AugmentationPreset.Parse("shift-flip"));
    }

    [Fact]
    public void SinCosDegreesIsAccurateAndExactAtQuarterTurns()
    {
        var rng = new Random(51);
        double worst = 0;
        for (int i = 0; i < 20000; i++)
        {
            float degrees = (float)(rng.NextDouble() * 720 - 360);
            var (sin, cos) = ImageWarp.SinCosDegrees(degrees);
            // SinPi/CosPi reduce exactly in half-turns, so the reference does not lose the bits a
            // large angle in radians does.
            worst = Math.Max(worst, Math.Abs(sin - double.SinPi(degrees / 180.0)));
            worst = Math.Max(worst, Math.Abs(cos - double.CosPi(degrees / 180.0)));
        }
        // 1e-15 absolute is ten million times finer than the float map it feeds.
        TestContext.Current.TestOutputHelper?.WriteLine($"largest error {worst:E2}");
        Assert.InRange(worst, 0, 1e-15);
        Assert.Equal((1.0, 0.0), (ImageWarp.SinCosDegrees(90f).Sin, Math.Abs(ImageWarp.SinCosDegrees(90f).Cos)));
        Assert.Equal((0.0, -1.0), (Math.Abs(ImageWarp.SinCosDegrees(180f).Sin), ImageWarp.SinCosDegrees(180f).Cos));
        Assert.Equal(-1.0, ImageWarp.SinCosDegrees(-90f).Sin);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageWarp.SinCosDegrees(361f));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageWarp.SinCosDegrees(float.NaN));
    }

    [Fact]
    public void AugmenterRejectsRangesTheWarpCannotTake()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmenter(new AugmentationPreset("x", 400f, 0f, 0f, false), 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmenter(new AugmentationPreset("x", 10f, 1f, 0f, false), 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmenter(new AugmentationPreset("x", 10f, 0f, -0.1f, false), 1));
    }
}
