using LaPerm.Core.Data;

namespace LaPerm.Core.Tests.Data;

public sealed class IdxReaderTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsImagesAndLabelsRawOrGzip(bool gzip)
    {
        var rng = new Random(gzip ? 11 : 12);
        using var dir = new TempDirectory();
        var pixels = DataFiles.RandomBytes(rng, 7 * 5 * 3);
        var labels = DataFiles.RandomBytes(rng, 7, 10);
        string imagesPath = dir.Write("images", DataFiles.IdxImages(pixels, 7, 5, 3), gzip);
        string labelsPath = dir.Write("labels", DataFiles.IdxLabels(labels), gzip);

        var images = IdxReader.ReadImages(imagesPath);
        Assert.Equal((7, 5, 3), (images.Count, images.Rows, images.Columns));
        Assert.Equal(pixels, images.Pixels);
        Assert.Equal(labels, IdxReader.ReadLabels(labelsPath));
    }

    [Fact]
    public void DetectsCompressionByContentNotByName()
    {
        var rng = new Random(13);
        using var dir = new TempDirectory();
        var pixels = DataFiles.RandomBytes(rng, 4 * 2 * 2);
        // A raw file called .gz and a gzip file without the extension both read correctly.
        string rawNamedGz = dir.Write("raw.gz", DataFiles.IdxImages(pixels, 4, 2, 2));
        string gzipNamedRaw = dir.Write("compressed-idx3-ubyte", DataFiles.IdxImages(pixels, 4, 2, 2), gzip: true);
        Assert.Equal(pixels, IdxReader.ReadImages(rawNamedGz).Pixels);
        Assert.Equal(pixels, IdxReader.ReadImages(gzipNamedRaw).Pixels);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WrongImageMagicNamesFileExpectedAndFound(bool gzip)
    {
        using var dir = new TempDirectory();
        string path = dir.Write("images.idx", DataFiles.IdxImages(DataFiles.RandomBytes(new Random(1), 4), 1, 2, 2, magic: 0x00000801), gzip);
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("expected 0x00000803", e.Message);
        Assert.Contains("found 0x00000801", e.Message);
    }

    [Fact]
    public void WrongLabelMagicNamesFileExpectedAndFound()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("labels.idx", DataFiles.IdxLabels([1, 2, 3], magic: 0x12345678));
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadLabels(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("expected 0x00000801", e.Message);
        Assert.Contains("found 0x12345678", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedBodyGivesExpectedAndFoundByteCounts(bool gzip)
    {
        var rng = new Random(14);
        using var dir = new TempDirectory();
        var full = DataFiles.IdxImages(DataFiles.RandomBytes(rng, 10 * 4 * 4), 10, 4, 4);
        string path = dir.Write("truncated-images", full[..(full.Length - 37)], gzip);
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains($"expected {full.Length} bytes", e.Message);
        Assert.Contains($"found {full.Length - 37}", e.Message);
    }

    [Fact]
    public void TruncatedHeaderIsReported()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("short", DataFiles.IdxImages([], 1, 1, 1)[..10]);
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("header of 16 bytes, found 10", e.Message);
    }

    [Fact]
    public void TrailingBytesBeyondTheHeaderCountAreRejected()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("long", DataFiles.IdxLabels([1, 2, 3, 4], declaredCount: 3));
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadLabels(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("expected 11 bytes", e.Message);
    }

    [Fact]
    public void CorruptGzipNamesTheFile()
    {
        using var dir = new TempDirectory();
        var gz = DataFiles.Gzip(DataFiles.IdxImages(DataFiles.RandomBytes(new Random(15), 3 * 8 * 8), 3, 8, 8));
        // Keep the gzip magic, destroy the deflate stream.
        for (int i = 12; i < gz.Length; i++)
            gz[i] = 0xFF;
        string path = dir.Write("corrupt.gz", gz);
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        // One flipped bit of the checksum: the decoder's own words name a compression method, the message the damage.
        gz = DataFiles.Gzip(DataFiles.IdxImages(DataFiles.RandomBytes(new Random(15), 3 * 8 * 8), 3, 8, 8));
        gz[^8] ^= 1;
        path = dir.Write("bad-crc.gz", gz);
        e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("its compressed data is damaged or cut short", e.Message);
    }

    [Fact]
    public void ZeroDimensionIsRejected()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("zero", DataFiles.IdxImages([], 5, 0, 3));
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("row count is 0", e.Message);
    }

    [Fact]
    public void AHeaderDeclaringMoreThanTheFileHoldsIsRefusedBeforeAllocating()
    {
        // 2,147,483,392 labels declared in a 108-byte file: refused as truncated (it ran out of memory before).
        using var dir = new TempDirectory();
        string labels = dir.Write("labels", [0, 0, 8, 1, 0x7F, 0xFF, 0xFF, 0x00, .. new byte[100]]);
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadLabels(labels));
        Assert.Contains(labels, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("found 108", e.Message);
        // 2,000,000 images of 28 x 28 declared in 116 bytes (1.5 GB would have been allocated first).
        string images = dir.Write("images", [0, 0, 8, 3, 0, 0x1E, 0x84, 0x80, 0, 0, 0, 28, 0, 0, 0, 28, .. new byte[100]]);
        e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(images));
        Assert.Contains("expected 1568000016 bytes", e.Message);
        Assert.Contains("found 116", e.Message);
        // The same compressed: the length shows only at the end of the stream, read in 16 MiB chunks
        // (the 1.5 GB array is never allocated; the message is the same).
        string gz = dir.Write("images.gz", [0, 0, 8, 3, 0, 0x1E, 0x84, 0x80, 0, 0, 0, 28, 0, 0, 0, 28, .. new byte[100]], gzip: true);
        e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(gz));
        Assert.Contains("expected 1568000016 bytes", e.Message);
        Assert.Contains("found 116", e.Message);
    }

    [Fact]
    public void ACompressedBodyLongerThanOneReadChunkIsReadWhole()
    {
        // 1,100 images of 128 x 128 (18 MB): more than one 16 MiB chunk of the gzip path.
        var rng = new Random(21);
        var pixels = DataFiles.RandomBytes(rng, 1100 * 128 * 128);
        using var dir = new TempDirectory();
        var read = IdxReader.ReadImages(dir.Write("big", DataFiles.IdxImages(pixels, 1100, 128, 128), gzip: true));
        Assert.Equal(pixels, read.Pixels);
    }

    [Fact]
    public void MissingFileIsAUserError()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "absent-idx3-ubyte");
        var e = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
    }
}
